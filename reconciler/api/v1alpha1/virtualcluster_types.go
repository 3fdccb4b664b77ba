package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Distro is the Kubernetes distribution a virtual cluster's control plane runs.
// +kubebuilder:validation:Enum=k3s;k8s
type Distro string

const (
	// DistroK3s runs k3s (API server, controller manager and SQLite in one
	// process) beside the syncer. It is the default.
	DistroK3s Distro = "k3s"
	// DistroK8s runs kube-apiserver, kube-controller-manager and etcd from
	// registry.k8s.io beside the syncer.
	DistroK8s Distro = "k8s"
)

// NodeMode says how the syncer presents nodes inside the virtual cluster.
// +kubebuilder:validation:Enum=fake;real
type NodeMode string

const (
	// NodesFake makes node objects from pod.spec.nodeName only.
	NodesFake NodeMode = "fake"
	// NodesReal copies host node facts; the syncer then needs read access to
	// host nodes.
	NodesReal NodeMode = "real"
)

// ExposeType is how a virtual cluster's API server is reachable.
// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer;Ingress
type ExposeType string

const (
	ExposeClusterIP    ExposeType = "ClusterIP"
	ExposeNodePort     ExposeType = "NodePort"
	ExposeLoadBalancer ExposeType = "LoadBalancer"
	ExposeIngress      ExposeType = "Ingress"
)

// SubjectKind is the kind of an RBAC subject inside a virtual cluster.
// +kubebuilder:validation:Enum=User;Group;ServiceAccount
type SubjectKind string

const (
	SubjectUser           SubjectKind = "User"
	SubjectGroup          SubjectKind = "Group"
	SubjectServiceAccount SubjectKind = "ServiceAccount"
)

// VirtualClusterSpec is what a tenant asks for.
type VirtualClusterSpec struct {
	// Tenant names the TenantPolicy group this cluster belongs to.
	// +kubebuilder:validation:MinLength=1
	Tenant string `json:"tenant"`

	// Distro is k3s (the default) or k8s.
	// +optional
	// +kubebuilder:default=k3s
	Distro Distro `json:"distro,omitempty"`

	// Version is the Kubernetes version, vMAJOR.MINOR.PATCH, optionally with
	// a k3s build suffix (v1.33.5+k3s1). Empty means warren's default.
	// +optional
	Version string `json:"version,omitempty"`

	// Host is the host cluster the cluster runs on: `local` (warren's own)
	// or a HostCluster in the Fleet's namespace. Empty means the Fleet's
	// spec.defaultHost. A cluster's host cannot change once it runs:
	// remove it and add it again to move it (empty) to another host.
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
	// +optional
	Host string `json:"host,omitempty"`

	// HostNamespace is the host namespace the control plane and the synced
	// workloads live in. Empty means vc-<name>.
	// +optional
	HostNamespace string `json:"hostNamespace,omitempty"`

	// Resources is the quota for the tenant's workloads.
	// +optional
	Resources ClusterResources `json:"resources,omitempty"`

	// Sync says what the syncer copies between the virtual and host cluster.
	// +optional
	Sync SyncSpec `json:"sync,omitempty"`

	// Expose says how the API server is reachable.
	// +optional
	Expose ExposeSpec `json:"expose,omitempty"`

	// Access grants cluster roles inside the virtual cluster.
	// +optional
	// +listType=atomic
	Access []AccessGrant `json:"access,omitempty"`

	// Workloads is what the cluster's workloads may use of the host; an
	// unset field takes the tenant policy's, a set one must stay within it.
	// +optional
	Workloads Workloads `json:"workloads,omitempty"`

	// Kubeconfig is the host Secret the tenant reads the cluster's
	// kubeconfig from. Empty means no tenant copy.
	// +optional
	Kubeconfig *KubeconfigTarget `json:"kubeconfig,omitempty"`

	// Paused scales the control plane to zero and keeps its data.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// ExpiresAt is when the cluster is deleted (pull-request previews).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// ClusterResources is a quota for a tenant's workloads. Every field is
// optional; an unset field sets no limit of its own (a policy may require it).
type ClusterResources struct {
	// +optional
	CPU *resource.Quantity `json:"cpu,omitempty"`
	// +optional
	Memory *resource.Quantity `json:"memory,omitempty"`
	// +optional
	Storage *resource.Quantity `json:"storage,omitempty"`
	// +optional
	Pods *resource.Quantity `json:"pods,omitempty"`
}

// SyncSpec holds the syncer's optional features.
type SyncSpec struct {
	// +optional
	Ingresses bool `json:"ingresses,omitempty"`
	// +optional
	StorageClasses bool `json:"storageClasses,omitempty"`
	// NodePorts lets NodePort Services open node ports on the host; when
	// off they are served as ClusterIP.
	// +optional
	NodePorts bool `json:"nodePorts,omitempty"`
	// LoadBalancers lets LoadBalancer Services ask the host for load
	// balancers; when off they are served as ClusterIP.
	// +optional
	LoadBalancers bool `json:"loadBalancers,omitempty"`
	// Nodes is fake (the default) or real.
	// +optional
	// +kubebuilder:default=fake
	Nodes NodeMode `json:"nodes,omitempty"`
}

// ExposeSpec says how the API server is reachable.
type ExposeSpec struct {
	// Type is ClusterIP (the default), NodePort, LoadBalancer or Ingress.
	// +optional
	// +kubebuilder:default=ClusterIP
	Type ExposeType `json:"type,omitempty"`
	// Host is the ingress host name; required when Type is Ingress.
	// +optional
	Host string `json:"host,omitempty"`
	// IngressClassName selects the host's ingress controller.
	// +optional
	IngressClassName string `json:"ingressClassName,omitempty"`
}

// AccessGrant binds a cluster role inside the virtual cluster to subjects.
type AccessGrant struct {
	// +kubebuilder:validation:MinLength=1
	ClusterRole string `json:"clusterRole"`
	// +kubebuilder:validation:MinItems=1
	// +listType=atomic
	Subjects []Subject `json:"subjects"`
}

// Subject is a user, group or service account.
type Subject struct {
	Kind SubjectKind `json:"kind"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// Namespace is for ServiceAccount subjects only.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// KubeconfigTarget names a host Secret.
type KubeconfigTarget struct {
	// +kubebuilder:validation:MinLength=1
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// HostObjects names the host objects that make up one virtual cluster.
type HostObjects struct {
	// +optional
	StatefulSet string `json:"statefulSet,omitempty"`
	// +optional
	Service string `json:"service,omitempty"`
	// +optional
	PKISecret string `json:"pkiSecret,omitempty"`
	// +optional
	KubeconfigSecret string `json:"kubeconfigSecret,omitempty"`
	// TenantKubeconfigSecret is the namespace/name copy the tenant reads.
	// +optional
	TenantKubeconfigSecret string `json:"tenantKubeconfigSecret,omitempty"`
}

// VirtualClusterStatus is what the reconciler observed.
type VirtualClusterStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// SourceRevision is the Git revision the definition was read from.
	// +optional
	SourceRevision string `json:"sourceRevision,omitempty"`
	// SourcePath is the definition's file inside the repository.
	// +optional
	SourcePath string `json:"sourcePath,omitempty"`
	// +optional
	HostNamespace string `json:"hostNamespace,omitempty"`
	// Endpoint is the API server URL tenants use.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// +optional
	HostObjects HostObjects `json:"hostObjects,omitempty"`
	// Kubeconfig is where the tenant's sealed kubeconfig was last
	// published in the Fleet's repository.
	// +optional
	Kubeconfig *PublishedKubeconfig `json:"kubeconfig,omitempty"`
}

// PublishedKubeconfig is a sealed kubeconfig file in Git.
type PublishedKubeconfig struct {
	// Path of the file from the repository's root.
	Path string `json:"path"`
	// Commit is the SHA-1 of the commit that last wrote it.
	// +optional
	Commit string `json:"commit,omitempty"`
}

// VirtualCluster is one virtual Kubernetes cluster: a definition in a fleet
// repository, and the cluster-scoped host object the reconciler keeps.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=vc
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Distro",type=string,JSONPath=`.spec.distro`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.host`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="a cluster name may have at most 52 characters, leaving room for the host names derived from it"
type VirtualCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec VirtualClusterSpec `json:"spec,omitempty"`
	// +optional
	Status VirtualClusterStatus `json:"status,omitempty"`
}

// VirtualClusterList is a list of VirtualCluster.
//
// +kubebuilder:object:root=true
type VirtualClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []VirtualCluster `json:"items"`
}

func init() {
	SchemeBuilder.Register(&VirtualCluster{}, &VirtualClusterList{})
}
