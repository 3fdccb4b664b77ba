package v1alpha1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// HostClusterKind is the kind name of HostCluster.
	HostClusterKind = "HostCluster"

	// LocalHost names the cluster warren itself runs on. It needs no
	// HostCluster object and no HostCluster may take its name.
	LocalHost = "local"

	// DefaultKubeConfigKey and DefaultKubeConfigYAMLKey are the Secret keys
	// read, in this order, when spec.kubeConfig.secretRef names no key (as
	// Flux reads them).
	DefaultKubeConfigKey     = "value"
	DefaultKubeConfigYAMLKey = "value.yaml"

	defaultHostInterval = time.Minute
)

// HostClusterSpec names a remote host cluster through a kubeconfig Secret.
type HostClusterSpec struct {
	// KubeConfig locates the kubeconfig warren uses on that host. It must
	// be self-contained (certificates and credentials inline, no exec or
	// auth-provider plugins, no file references) and keep TLS verification
	// on: a kubeconfig asking to skip it is refused.
	// +required
	KubeConfig HostKubeConfig `json:"kubeConfig"`

	// Interval between two checks of the host. Default one minute.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// HostKubeConfig is where a host's kubeconfig is, shaped as Flux's
// spec.kubeConfig.
type HostKubeConfig struct {
	// SecretRef names a Secret in the HostCluster's namespace; its key
	// (default `value`, then `value.yaml`) holds the kubeconfig.
	// +required
	SecretRef meta.SecretKeyReference `json:"secretRef"`
}

// HostClusterStatus is what warren last saw of a host.
type HostClusterStatus struct {
	// ObservedGeneration is the last generation of the spec checked.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (True when the host answers with the kubeconfig
	// given and its ranges are known).
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ServerVersion is the host API server's version (gitVersion).
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`

	// ServiceCIDR is the host's service range that ClusterIPs come from
	// (its primary family's), as detected.
	// +optional
	ServiceCIDR string `json:"serviceCIDR,omitempty"`

	// NodePortRange is the host's node-port range, first-last, as
	// detected (the default 30000-32767 when the host would not say).
	// +optional
	NodePortRange string `json:"nodePortRange,omitempty"`

	// LastError is the last check's error; empty once a check succeeds.
	// +optional
	LastError string `json:"lastError,omitempty"`

	// LastCheckedAt is when the host was last checked.
	// +optional
	LastCheckedAt *metav1.Time `json:"lastCheckedAt,omitempty"`
}

// HostCluster is a remote Kubernetes cluster a Fleet in the same namespace
// may place virtual clusters on (spec.host of a definition). warren's own
// cluster is the host `local` and has no HostCluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hc
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.serverVersion`
// +kubebuilder:printcolumn:name="Service CIDR",type=string,JSONPath=`.status.serviceCIDR`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name != 'local'",message="local is warren's own cluster and needs no HostCluster"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a host name is a DNS label: at most 63 characters"
type HostCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   HostClusterSpec   `json:"spec,omitempty"`
	Status HostClusterStatus `json:"status,omitempty"`
}

// HostClusterList is a list of HostClusters.
//
// +kubebuilder:object:root=true
type HostClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HostCluster `json:"items"`
}

// GetConditions returns the status conditions, for fluxcd/pkg/runtime.
func (in *HostCluster) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *HostCluster) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetInterval is the time between two checks, one minute when unset.
func (in *HostCluster) GetInterval() time.Duration {
	if in.Spec.Interval == nil || in.Spec.Interval.Duration <= 0 {
		return defaultHostInterval
	}
	return in.Spec.Interval.Duration
}

// HostOf is the host a cluster's spec names, LocalHost when it names none
// (objects applied before spec.host existed).
func HostOf(spec VirtualClusterSpec) string {
	if spec.Host == "" {
		return LocalHost
	}
	return spec.Host
}

func init() {
	SchemeBuilder.Register(&HostCluster{}, &HostClusterList{})
}
