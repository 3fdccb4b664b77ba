package v1alpha1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// FleetKind is the kind name of Fleet.
	FleetKind = "Fleet"

	// DefaultKubeconfigPath is where kubeconfigs go unless the Fleet says otherwise.
	DefaultKubeconfigPath = "kubeconfigs"

	defaultFleetInterval = time.Minute
)

// FleetSpec says which Git repository, at which ref and sub-folder, holds a
// fleet of virtual cluster definitions, and how often to reconcile it.
type FleetSpec struct {
	// URL of the Git repository: https://, ssh://, file:// or a local path.
	// +kubebuilder:validation:Pattern="^(https?://|ssh://|file://|/|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)"
	// +required
	URL string `json:"url"`

	// Ref selects what to check out. Empty means the remote's default branch.
	// +optional
	Ref *GitRef `json:"ref,omitempty"`

	// Path is the folder inside the repository that holds the fleet's
	// definitions and policies. Empty means the repository root.
	// +optional
	Path string `json:"path,omitempty"`

	// Interval between two polls of the repository. A zero value (as a Go
	// client sends when it leaves the field unset) means the default too.
	// +kubebuilder:default="1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty"`

	// Timeout bounds one fetch and one apply. Defaults to the interval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// SecretRef names a Secret in the Fleet's namespace with the credentials
	// for the repository. For https: `username` and `password` (basic auth;
	// a token goes in `password`), or `bearerToken`, and optionally `ca.crt`
	// to trust a private CA (credentials are never sent over plain http).
	// For ssh: `identity` (the private key, PEM or OpenSSH format), optional
	// `password` (the key's passphrase) and `known_hosts`, which is
	// required: warren never skips the host key check.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`

	// Suspend stops reconciling this Fleet; nothing is applied or pruned
	// while it is set.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Prune deletes the host objects of clusters removed from Git.
	// +kubebuilder:default=true
	// +optional
	Prune *bool `json:"prune,omitempty"`

	// DeletionPolicy says what deleting the Fleet does to its clusters:
	// MirrorPrune (the default) deletes them when spec.prune is on and
	// keeps them when it is off; Delete always deletes them; Orphan always
	// keeps them on the host, as they are, still labelled as this Fleet's
	// (a Fleet of the same name and namespace created later takes them
	// back). A suspended Fleet deletes nothing, whatever its policy.
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;Orphan
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`

	// AllowMassPrune lets a single revision remove more than half of this
	// Fleet's clusters. Without it such a revision is held back with the
	// reason PruneBlocked until the Fleet allows it.
	// +optional
	AllowMassPrune bool `json:"allowMassPrune,omitempty"`

	// DefaultHost is the host of the definitions that name none in
	// spec.host: `local` (warren's own cluster, the default) or the name
	// of a HostCluster in the Fleet's namespace. Every tenant may use it;
	// other hosts only as its TenantPolicy's spec.hosts allows.
	// +kubebuilder:default=local
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
	// +optional
	DefaultHost string `json:"defaultHost,omitempty"`

	// Kubeconfigs publishes each Ready cluster's tenant kubeconfig back to
	// this repository, sealed for the host's sealed-secrets controller.
	// Unset: nothing is written to the repository. Publishing needs
	// spec.ref to be a branch (or empty: the default branch) and write
	// access in spec.secretRef's credentials.
	// +optional
	Kubeconfigs *KubeconfigPublishing `json:"kubeconfigs,omitempty"`
}

// KubeconfigPublishing says where a Fleet's sealed kubeconfigs go and how
// they are made.
type KubeconfigPublishing struct {
	// Path is the folder, from the repository's root, that holds one
	// `<cluster>.yaml` SealedSecret per cluster. It must not lie inside
	// the fleet's clusters/, policies/ or templates/ folders.
	// +kubebuilder:default=kubeconfigs
	// +kubebuilder:validation:Pattern="^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"
	// +optional
	Path string `json:"path,omitempty"`

	// Sealing says where the sealing certificate comes from.
	// +required
	Sealing SealingSource `json:"sealing"`

	// CertificateLifetime is how long each tenant client certificate is
	// valid; it is renewed at two thirds of it. Default 2160h (90 days).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	CertificateLifetime *metav1.Duration `json:"certificateLifetime,omitempty"`

	// Author of warren's commits. Default: warren <warren@noreply.warren.dev>.
	// +optional
	Author *CommitAuthor `json:"author,omitempty"`
}

// SealingSource locates the sealed-secrets public certificate: the
// controller (fetched through the API server's service proxy, as kubeseal
// does), or a copy of it in a Secret or ConfigMap. Exactly one is set.
// +kubebuilder:validation:XValidation:rule="(has(self.controller) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.configMap) ? 1 : 0) == 1",message="set exactly one of controller, secret and configMap"
type SealingSource struct {
	// +optional
	Controller *SealingController `json:"controller,omitempty"`
	// +optional
	Secret *SealingCertificateRef `json:"secret,omitempty"`
	// +optional
	ConfigMap *SealingCertificateRef `json:"configMap,omitempty"`
}

// SealingController is the sealed-secrets controller's Service.
type SealingController struct {
	// Namespace of the controller; default kube-system (kubeseal's default).
	// +kubebuilder:default=kube-system
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Service name; default sealed-secrets-controller (kubeseal's default).
	// +kubebuilder:default=sealed-secrets-controller
	// +optional
	Service string `json:"service,omitempty"`
	// Port is the Service port's name or number; its first port when empty.
	// +optional
	Port string `json:"port,omitempty"`
}

// SealingCertificateRef names one key of a Secret or ConfigMap holding the
// PEM sealing certificate.
type SealingCertificateRef struct {
	// Namespace; the Fleet's own when empty.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Key; default cert.pem.
	// +optional
	Key string `json:"key,omitempty"`
}

// CommitAuthor names who commits.
type CommitAuthor struct {
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	Email string `json:"email"`
}

// GitRef selects a branch, a tag or a commit. When more than one is given
// the most specific wins: commit, then tag, then branch.
type GitRef struct {
	// Branch to follow.
	// +optional
	Branch string `json:"branch,omitempty"`

	// Tag to check out.
	// +optional
	Tag string `json:"tag,omitempty"`

	// Commit SHA-1 to check out. With a branch too, the revision is named
	// after the branch; the commit is not checked to be on it.
	// +kubebuilder:validation:Pattern="^[0-9a-f]{40}$"
	// +optional
	Commit string `json:"commit,omitempty"`
}

// FleetStatus is what the reconciler last observed and did for a Fleet.
type FleetStatus struct {
	// ObservedGeneration is the last generation of the spec acted upon.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling and Stalled, as fluxcd/pkg/runtime
	// reads and writes them.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastAttemptedRevision is the last revision fetched, applied or not,
	// as `<branch>@sha1:<hex>` (`<tag>@sha1:<hex>`, or `sha1:<hex>` for a
	// bare commit).
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`

	// LastAppliedRevision is the last revision applied to the host in full:
	// every admitted cluster written and every removal pruned. A revision
	// with a cluster that failed, whose objects warren does not own, or
	// whose removals are held back (PruneBlocked) does not move it.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// LastHandledRequestedAt is the value of the warren.dev/requested-at
	// annotation the reconciler last acted upon.
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`

	// Shard is the --watch-label-selector of the reconciler that wrote this
	// status last: which shard reconciles the Fleet (empty for a reconciler
	// that watches every Fleet).
	// +optional
	Shard string `json:"shard,omitempty"`

	// Inventory says how many host objects this Fleet applied and owns,
	// and which ConfigMaps in its namespace list them.
	// +optional
	Inventory *FleetInventory `json:"inventory,omitempty"`

	// AdmittedClusters counts the definitions admitted at the last
	// attempted revision.
	// +optional
	AdmittedClusters int `json:"admittedClusters"`

	// RejectedClusters counts the definitions that failed to load or were
	// denied by policy at the last attempted revision.
	// +optional
	RejectedClusters int `json:"rejectedClusters"`

	// Kubeconfigs reports publishing kubeconfigs back to the repository.
	// +optional
	Kubeconfigs *KubeconfigPublishingStatus `json:"kubeconfigs,omitempty"`
}

// KubeconfigPublishingStatus is what the kubeconfig publisher last did.
type KubeconfigPublishingStatus struct {
	// LastCommit is the SHA-1 of the last commit warren pushed.
	// +optional
	LastCommit string `json:"lastCommit,omitempty"`

	// PendingPushes lists the repository paths whose change is made but
	// not yet accepted by the remote, with why each changed.
	// +optional
	PendingPushes []string `json:"pendingPushes,omitempty"`

	// LastPushError is the remote's message for the last failed push;
	// empty once a push lands.
	// +optional
	LastPushError string `json:"lastPushError,omitempty"`

	// LastHandledRequestedAt is the warren.dev/requested-at value the
	// publisher last acted upon.
	// +optional
	LastHandledRequestedAt string `json:"lastHandledRequestedAt,omitempty"`
}

// FleetInventory is where a Fleet's inventory is kept. The entries live in
// ConfigMaps in the Fleet's namespace, each holding the entries of some of
// its clusters, so a Fleet of thousands of clusters stays far below the
// API server's object size limit and a change to one cluster rewrites one
// ConfigMap, not the whole inventory.
type FleetInventory struct {
	// Objects counts the host objects the Fleet owns.
	Objects int `json:"objects"`

	// Clusters counts the virtual clusters it holds objects of.
	// +optional
	Clusters int `json:"clusters,omitempty"`

	// ConfigMaps are the ConfigMaps, in the Fleet's namespace, that hold
	// the entries, with a digest of each one's content as last written.
	// +optional
	ConfigMaps []InventoryConfigMap `json:"configMaps,omitempty"`

	// Entries is where earlier versions of warren kept the inventory: read
	// when no ConfigMaps are listed, then moved into them and emptied.
	// +optional
	Entries []ResourceRef `json:"entries,omitempty"`
}

// InventoryConfigMap is one ConfigMap of a Fleet's inventory.
type InventoryConfigMap struct {
	// Name of the ConfigMap, in the Fleet's namespace.
	Name string `json:"name"`

	// Digest of its data as warren last wrote or read it.
	Digest string `json:"digest"`
}

// ResourceInventory is the set of host objects a Fleet owns, with what is
// needed to tell, by listing, whether each one still is as last applied.
type ResourceInventory struct {
	// Entries, sorted by ID.
	// +optional
	Entries []ResourceRef `json:"entries"`
}

// ResourceRef is one object in an inventory.
type ResourceRef struct {
	// ID is `<namespace>_<name>_<group>_<kind>` (namespace empty for
	// cluster-scoped objects).
	ID string `json:"id"`

	// Version is the API version the object was applied with.
	Version string `json:"v"`

	// Host is the host cluster the object is on: empty for warren's own
	// (local), else a HostCluster's name.
	// +optional
	Host string `json:"h,omitempty"`

	// Cluster is the virtual cluster the object belongs to (its
	// warren.dev/cluster label), empty for objects of the Fleet itself.
	// +optional
	Cluster string `json:"c,omitempty"`

	// Digest is a hash of the object as warren last applied it.
	// +optional
	Digest string `json:"d,omitempty"`

	// Observed is a short hash of the live object's managedFields entries
	// (status subresource left out) right after warren's apply, or `rv<n>`
	// when it has none. A different value on a later list means someone
	// other than a status writer changed it.
	// +optional
	Observed string `json:"o,omitempty"`
}

// Fleet is one Git repository of virtual cluster definitions that warren
// reconciles onto this host.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fl
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.spec.url`
// +kubebuilder:printcolumn:name="Admitted",type=integer,JSONPath=`.status.admittedClusters`
// +kubebuilder:printcolumn:name="Rejected",type=integer,JSONPath=`.status.rejectedClusters`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.lastAppliedRevision`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Fleet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   FleetSpec   `json:"spec,omitempty"`
	Status FleetStatus `json:"status,omitempty"`
}

// FleetList is a list of Fleets.
//
// +kubebuilder:object:root=true
type FleetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Fleet `json:"items"`
}

// GetConditions returns the status conditions; with SetConditions it lets
// fluxcd/pkg/runtime/conditions and its patch helper manage them.
func (in *Fleet) GetConditions() []metav1.Condition {
	return in.Status.Conditions
}

// SetConditions replaces the status conditions.
func (in *Fleet) SetConditions(conditions []metav1.Condition) {
	in.Status.Conditions = conditions
}

// GetInterval returns the poll interval, one minute when unset.
func (in *Fleet) GetInterval() metav1.Duration {
	if in.Spec.Interval.Duration <= 0 {
		return metav1.Duration{Duration: defaultFleetInterval}
	}
	return in.Spec.Interval
}

// GetRequeueAfter returns how long to wait before the next poll.
func (in *Fleet) GetRequeueAfter() time.Duration {
	return in.GetInterval().Duration
}

// GetTimeout returns the timeout of one fetch or apply: spec.timeout, else
// the interval.
func (in *Fleet) GetTimeout() metav1.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return *in.Spec.Timeout
	}
	return in.GetInterval()
}

// Deletion policies (spec.deletionPolicy), named as Flux names them.
const (
	DeletionPolicyMirrorPrune = "MirrorPrune"
	DeletionPolicyDelete      = "Delete"
	DeletionPolicyOrphan      = "Orphan"
)

// DeletesClustersOnDeletion reports whether deleting the Fleet deletes its
// clusters: never while it is suspended, always under Delete, never under
// Orphan, and as spec.prune says under MirrorPrune (the default).
func (in *Fleet) DeletesClustersOnDeletion() bool {
	if in.Spec.Suspend {
		return false
	}
	switch in.Spec.DeletionPolicy {
	case DeletionPolicyDelete:
		return true
	case DeletionPolicyOrphan:
		return false
	default:
		return in.PruneEnabled()
	}
}

// GetDefaultHost is spec.defaultHost, LocalHost when unset.
func (in *Fleet) GetDefaultHost() string {
	if in.Spec.DefaultHost == "" {
		return LocalHost
	}
	return in.Spec.DefaultHost
}

// PruneEnabled reports whether clusters removed from Git are deleted from the
// host; true unless spec.prune is explicitly false.
func (in *Fleet) PruneEnabled() bool {
	return in.Spec.Prune == nil || *in.Spec.Prune
}

func init() {
	SchemeBuilder.Register(&Fleet{}, &FleetList{})
}
