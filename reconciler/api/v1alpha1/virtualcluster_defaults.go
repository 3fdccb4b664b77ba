package v1alpha1

// Defaults warren applies to fields a definition or policy leaves empty.
const (
	// DefaultK3sVersion is the Kubernetes version of the k3s distro when a
	// definition names none.
	DefaultK3sVersion = "v1.33.5+k3s1"
	// DefaultK8sVersion is the Kubernetes version of the k8s distro when a
	// definition names none.
	DefaultK8sVersion = "v1.33.5"
)

// Default fills the fields a definition may leave empty. It is idempotent.
func (vc *VirtualCluster) Default() {
	s := &vc.Spec
	if s.Distro == "" {
		s.Distro = DistroK3s
	}
	if s.Version == "" {
		switch s.Distro {
		case DistroK8s:
			s.Version = DefaultK8sVersion
		default:
			s.Version = DefaultK3sVersion
		}
	}
	if s.HostNamespace == "" && vc.Name != "" {
		s.HostNamespace = "vc-" + vc.Name
	}
	if s.Sync.Nodes == "" {
		s.Sync.Nodes = NodesFake
	}
	if s.Expose.Type == "" {
		s.Expose.Type = ExposeClusterIP
	}
}

// Default fills the fields a policy may leave empty. It is idempotent.
func (p *TenantPolicy) Default() {
	if p.Spec.PodSecurity == "" {
		p.Spec.PodSecurity = PodSecurityRestricted
	}
	if p.Spec.NetworkIsolation == nil {
		on := true
		p.Spec.NetworkIsolation = &on
	}
}

// Isolated reports whether the policy isolates host namespaces.
func (p *TenantPolicy) Isolated() bool {
	return p.Spec.NetworkIsolation == nil || *p.Spec.NetworkIsolation
}
