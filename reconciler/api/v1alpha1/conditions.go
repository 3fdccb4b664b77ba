package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Condition types of a VirtualCluster on the host.
const (
	// AdmittedCondition says whether the definition in Git passed its
	// tenant's policy; when False the cluster keeps running as last applied.
	AdmittedCondition = "Admitted"
	// AppliedCondition says whether the rendered objects are on the host.
	AppliedCondition = "Applied"
	// ReadyCondition says whether the control plane's StatefulSet is ready.
	ReadyCondition = "Ready"
	// KubeconfigPublishedCondition says whether the tenant's sealed
	// kubeconfig is in Git; its message names the commit.
	KubeconfigPublishedCondition = "KubeconfigPublished"
)

// Condition types of a Fleet, besides Flux's Ready, Reconciling and Stalled.
const (
	// PruneBlockedCondition is True while a revision's removals are held
	// back (reason PruneBlockedReason).
	PruneBlockedCondition = "PruneBlocked"
	// KubeconfigsPublishedCondition says whether every kubeconfig change
	// reached the repository.
	KubeconfigsPublishedCondition = "KubeconfigsPublished"
)

// Reasons of a Fleet's Ready condition. Where Flux has a reason of the same
// meaning (meta.ReconciliationSucceededReason, meta.ProgressingReason,
// meta.PruneFailedReason), warren uses Flux's.
const (
	// GitOperationFailedReason: the repository could not be fetched.
	GitOperationFailedReason = "GitOperationFailed"
	// LoadFailedReason: the revision could not be read at all.
	LoadFailedReason = "LoadFailed"
	// ValidationFailedReason: some files have problems; their clusters are
	// kept as last applied.
	ValidationFailedReason = "ValidationFailed"
	// ConflictReason: objects warren would write belong to someone else
	// (also on a VirtualCluster's Applied condition).
	ConflictReason = "Conflict"
	// ApplyFailedReason: writing to the host failed (also on a
	// VirtualCluster's Applied condition).
	ApplyFailedReason = "ApplyFailed"
	// PruneBlockedReason: a revision would remove more than half of a
	// Fleet's clusters and the Fleet does not allow a mass prune.
	PruneBlockedReason = "PruneBlocked"
	// InvalidConfigurationReason: the Fleet's spec cannot work as written;
	// the Fleet is Stalled until it changes. On a HostCluster: its
	// kubeconfig Secret is missing or unusable.
	InvalidConfigurationReason = "InvalidConfiguration"
	// HostUnreachableReason: a host cluster does not answer (or has no
	// usable HostCluster); its clusters are kept as last applied and
	// nothing on it is pruned. Also on a HostCluster's Ready condition and
	// on a VirtualCluster's Applied condition.
	HostUnreachableReason = "HostUnreachable"
)

// Reasons of a VirtualCluster's Admitted, Applied and Ready conditions.
const (
	AdmittedReason          = "Admitted"
	NotAdmittedReason       = "NotAdmitted"
	AppliedReason           = "Applied"
	NotAppliedReason        = "NotApplied"
	PausedReason            = "Paused"
	ControlPlaneReadyReason = "ControlPlaneReady"
)

// Reasons of the kubeconfig conditions: a VirtualCluster's
// KubeconfigPublished and a Fleet's KubeconfigsPublished.
const (
	// PublishedReason: the file is in Git at the commit the message names.
	PublishedReason = "Published"
	// SealingUnavailableReason: no usable sealing certificate (missing or
	// expired); nothing was written.
	SealingUnavailableReason = "SealingCertificateUnavailable"
	// PushPendingReason: the file is committed locally, its push not yet
	// accepted.
	PushPendingReason = "PushPending"
	// PushRejectedReason: the remote refused the push; the message says why.
	PushRejectedReason = "PushRejected"
	// PublishFailedReason: any other failure to make the file.
	PublishFailedReason = "PublishFailed"
	// SomeNotPublishedReason: some of a Fleet's kubeconfigs are not in Git.
	SomeNotPublishedReason = "SomeNotPublished"
	// PushFailedReason: a Fleet's kubeconfig changes were not pushed.
	PushFailedReason = "PushFailed"
	// WaitingForClusterReason: the cluster is not Ready yet.
	WaitingForClusterReason = "WaitingForCluster"
)

// GetConditions returns the cluster's status conditions.
func (in *VirtualCluster) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the cluster's status conditions.
func (in *VirtualCluster) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// VirtualClusterKind is the kind of the host object of an admitted cluster.
const VirtualClusterKind = "VirtualCluster"
