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

// GetConditions returns the cluster's status conditions.
func (in *VirtualCluster) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the cluster's status conditions.
func (in *VirtualCluster) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// VirtualClusterKind is the kind of the host object of an admitted cluster.
const VirtualClusterKind = "VirtualCluster"
