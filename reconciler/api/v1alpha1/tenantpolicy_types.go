package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodSecurityLevel is the Pod Security Standard enforced on a virtual
// cluster's host namespace and by its syncer.
// +kubebuilder:validation:Enum=baseline;restricted
type PodSecurityLevel string

const (
	PodSecurityBaseline   PodSecurityLevel = "baseline"
	PodSecurityRestricted PodSecurityLevel = "restricted"
)

// TenantPolicySpec says what one tenant's definitions may ask for. Every
// allowance is deny-by-default: an empty list allows only warren's default
// for that field.
type TenantPolicySpec struct {
	// Tenant is the tenant this policy covers; one policy per tenant.
	// +kubebuilder:validation:MinLength=1
	Tenant string `json:"tenant"`

	// Subjects are the tenant's people (groups and users). A grant
	// allowance without subjects of its own allows granting to these.
	// +optional
	// +listType=atomic
	Subjects []Subject `json:"subjects,omitempty"`

	// ClusterNames are glob patterns (path.Match) a cluster name must match.
	// Empty allows any name.
	// +optional
	// +listType=atomic
	ClusterNames []string `json:"clusterNames,omitempty"`

	// MaxClusters is how many clusters the tenant may have.
	// +kubebuilder:validation:Minimum=0
	MaxClusters *int32 `json:"maxClusters"`

	// PerCluster limits each cluster's resources. An unset field sets no
	// limit; a set field also requires clusters to ask for that resource.
	// +optional
	PerCluster ClusterResources `json:"perCluster,omitempty"`

	// Total limits the sum over the tenant's clusters, like PerCluster.
	// +optional
	Total ClusterResources `json:"total,omitempty"`

	// Distros lists the allowed distros and versions. Empty allows k3s at
	// any version.
	// +optional
	// +listType=atomic
	Distros []DistroAllowance `json:"distros,omitempty"`

	// Sync lists the syncer features clusters may turn on.
	// +optional
	Sync SyncAllowance `json:"sync,omitempty"`

	// Expose lists how clusters may be exposed. Empty allows ClusterIP only.
	// +optional
	Expose ExposeAllowance `json:"expose,omitempty"`

	// Grants lists which cluster roles may be granted to whom inside a
	// cluster. Empty allows no access grants.
	// +optional
	// +listType=atomic
	Grants []GrantAllowance `json:"grants,omitempty"`

	// KubeconfigNamespaces are the host namespaces a cluster's kubeconfig
	// may be copied to. Empty allows none.
	// +optional
	// +listType=atomic
	KubeconfigNamespaces []string `json:"kubeconfigNamespaces,omitempty"`

	// PodSecurity is the level enforced on the host namespace and by the
	// syncer: restricted (the default) or baseline.
	// +optional
	PodSecurity PodSecurityLevel `json:"podSecurity,omitempty"`

	// NetworkIsolation isolates each cluster's host namespace with a
	// NetworkPolicy. Unset means on.
	// +optional
	NetworkIsolation *bool `json:"networkIsolation,omitempty"`
}

// DistroAllowance allows one distro at versions matching any pattern.
type DistroAllowance struct {
	Name Distro `json:"name"`
	// Versions are glob patterns (path.Match) such as v1.33.*; empty allows
	// any version.
	// +optional
	// +listType=atomic
	Versions []string `json:"versions,omitempty"`
}

// SyncAllowance lists the syncer features a tenant may turn on.
type SyncAllowance struct {
	// +optional
	Ingresses bool `json:"ingresses,omitempty"`
	// +optional
	StorageClasses bool `json:"storageClasses,omitempty"`
	// NodePorts allows sync.nodePorts.
	// +optional
	NodePorts bool `json:"nodePorts,omitempty"`
	// LoadBalancers allows sync.loadBalancers.
	// +optional
	LoadBalancers bool `json:"loadBalancers,omitempty"`
	// RealNodes allows sync.nodes: real.
	// +optional
	RealNodes bool `json:"realNodes,omitempty"`
}

// ExposeAllowance lists the allowed expose types and ingress hosts.
type ExposeAllowance struct {
	// +optional
	// +listType=atomic
	Types []ExposeType `json:"types,omitempty"`
	// Hosts are glob patterns for ingress hosts.
	// +optional
	// +listType=atomic
	Hosts []string `json:"hosts,omitempty"`
}

// GrantAllowance allows binding any of ClusterRoles to any of Subjects.
// Role and subject names may be glob patterns.
type GrantAllowance struct {
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	ClusterRoles []string `json:"clusterRoles"`
	// Subjects may be granted the roles; empty means the policy's own
	// subjects (the tenant's people).
	// +optional
	// +listType=atomic
	Subjects []Subject `json:"subjects,omitempty"`
}

// TenantPolicy is a document in a fleet repository's policies/ folder. It is
// read from Git only and has no host CRD, so it spells out apiVersion and
// kind instead of embedding metav1.TypeMeta (which would make controller-gen
// emit a CRD for it).
type TenantPolicy struct {
	APIVersion        string `json:"apiVersion"`
	Kind              string `json:"kind"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec TenantPolicySpec `json:"spec,omitempty"`
}
