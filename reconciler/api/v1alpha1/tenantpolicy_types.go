package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
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

	// HostNamespaces are glob patterns (path.Match) of the host namespaces a
	// cluster may name in spec.hostNamespace. vc-<name> is always allowed;
	// empty allows nothing else. Reserved namespaces (kube-*, default,
	// warren-system and warren's own) are refused whatever matches.
	// +optional
	// +listType=atomic
	HostNamespaces []string `json:"hostNamespaces,omitempty"`

	// Hosts are the host clusters (HostCluster names, or `local`) this
	// tenant's clusters may name in spec.host. The Fleet's default host
	// is always allowed; empty allows nothing else.
	// +optional
	// +listType=atomic
	Hosts []string `json:"hosts,omitempty"`

	// Workloads is the most of the host a cluster's workloads may use. A
	// cluster gets it as it is, or asks for less in its own
	// spec.workloads.
	// +optional
	Workloads Workloads `json:"workloads,omitempty"`
}

// Workloads is what a virtual cluster's workloads may use of the host: the
// storage classes their claims name, the nodes their pods run on, the hosts
// and classes their Ingresses claim, the annotations that reach the host,
// and the addresses selector-less Services point at. Each field is what the
// syncer enforces, one flag each.
//
// In a TenantPolicy each field is the most a cluster may have, and an empty
// field allows only the safe default said below. In a VirtualCluster an
// unset field takes the policy's value, and a set field must stay within
// it (a subset of a list; for patterns, the policy's own pattern or a
// plain value it matches).
type Workloads struct {
	// StorageClasses are the host storage classes (names) claims may name.
	// Empty: only the host's default class (claims that name no class).
	// +optional
	// +listType=atomic
	StorageClasses []string `json:"storageClasses,omitempty"`

	// StaticBinding lets claims bind a chosen host volume
	// (storageClassName "" or volumeName). Unset in a policy: refused.
	// +optional
	StaticBinding *bool `json:"staticBinding,omitempty"`

	// NodeSelector is put on every pod of the cluster; the tenant's own
	// node choices cannot leave it. In a policy a value may be a glob
	// pattern, which a cluster must then fill with a value it matches.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// Tolerations every pod of the cluster gets; tenants' own tolerations
	// outside them are dropped.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// IngressHosts are glob patterns (path.Match) an Ingress host must
	// match. Empty: no Ingress host is allowed.
	// +optional
	// +listType=atomic
	IngressHosts []string `json:"ingressHosts,omitempty"`

	// IngressClasses are the host ingress classes an Ingress may name.
	// Empty: only Ingresses naming no class (the host's default).
	// +optional
	// +listType=atomic
	IngressClasses []string `json:"ingressClasses,omitempty"`

	// IngressAnnotations are the Ingress annotation keys that reach the
	// host: a key, or prefix/* for every key of one prefix. Empty: none.
	// +optional
	// +listType=atomic
	IngressAnnotations []string `json:"ingressAnnotations,omitempty"`

	// PodAnnotations are the pod annotation keys that reach the host, like
	// IngressAnnotations. Empty: none.
	// +optional
	// +listType=atomic
	PodAnnotations []string `json:"podAnnotations,omitempty"`

	// EndpointCIDRs are the ranges, besides the cluster's own pods,
	// selector-less Services' endpoints may point at. Empty: none.
	// +optional
	// +listType=atomic
	EndpointCIDRs []string `json:"endpointCIDRs,omitempty"`
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
