package pods

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Security decides whether a virtual pod may reach the host: the Kubernetes
// Pod Security Standard at the configured level, plus warren's own rules that
// keep a pod from reaching host objects outside its cluster's set.
type Security struct {
	level     psaapi.LevelVersion
	evaluator policy.Evaluator

	// Nameservers decides which DNS servers a pod may name itself (nil:
	// none).
	Nameservers *Nameservers
}

// NewSecurity builds the checks for level "baseline" or "restricted".
func NewSecurity(level string) (*Security, error) {
	l, err := psaapi.ParseLevel(level)
	if err != nil || l == psaapi.LevelPrivileged {
		return nil, fmt.Errorf("pod security level %q: want baseline or restricted", level)
	}
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("building pod security checks: %w", err)
	}
	return &Security{level: psaapi.LevelVersion{Level: l, Version: psaapi.LatestVersion()}, evaluator: ev}, nil
}

// allowedVolumes are the volume types a synced pod may use. Everything else
// either reaches the node (hostPath) or names host-side objects the syncer
// cannot translate (secretRefs of inline CSI, RBD, CephFS, FlexVolume…).
var allowedVolumes = map[string]func(corev1.VolumeSource) bool{
	"configMap":             func(v corev1.VolumeSource) bool { return v.ConfigMap != nil },
	"secret":                func(v corev1.VolumeSource) bool { return v.Secret != nil },
	"projected":             func(v corev1.VolumeSource) bool { return v.Projected != nil },
	"downwardAPI":           func(v corev1.VolumeSource) bool { return v.DownwardAPI != nil },
	"emptyDir":              func(v corev1.VolumeSource) bool { return v.EmptyDir != nil },
	"persistentVolumeClaim": func(v corev1.VolumeSource) bool { return v.PersistentVolumeClaim != nil },
	"ephemeral":             func(v corev1.VolumeSource) bool { return v.Ephemeral != nil },
	"image":                 func(v corev1.VolumeSource) bool { return v.Image != nil },
}

// Check returns "" when pod may be synced, or a reason a tenant can read.
func (s *Security) Check(pod *corev1.Pod) string {
	var reasons []string
	results := s.evaluator.EvaluatePod(s.level, &pod.ObjectMeta, &pod.Spec)
	if agg := policy.AggregateCheckResults(results); !agg.Allowed {
		reasons = append(reasons, fmt.Sprintf("violates PodSecurity %q: %s", s.level.String(), agg.ForbiddenDetail()))
	}
	for _, v := range pod.Spec.Volumes {
		if !allowedVolume(v.VolumeSource) {
			reasons = append(reasons, fmt.Sprintf("volume %q: this volume type is not allowed in a virtual cluster", v.Name))
		}
		if p := v.Projected; p != nil {
			for _, src := range p.Sources {
				if src.ClusterTrustBundle != nil || src.PodCertificate != nil {
					reasons = append(reasons, fmt.Sprintf("volume %q: clusterTrustBundle and podCertificate projections are not allowed in a virtual cluster", v.Name))
				}
			}
		}
	}
	if keys := controlPlaneKeys(pod); len(keys) > 0 {
		reasons = append(reasons, fmt.Sprintf("node selection on %s is not allowed: pods never run on control-plane nodes", strings.Join(keys, ", ")))
	}
	if len(pod.Spec.ResourceClaims) > 0 {
		reasons = append(reasons, "spec.resourceClaims: dynamic resource allocation is not available in a virtual cluster")
	}
	if pod.Spec.NodeName != "" && !scheduled(pod) {
		reasons = append(reasons, "spec.nodeName: a pod cannot choose its host node; the host scheduler places it within the platform's nodes")
	}
	if c := pod.Spec.DNSConfig; c != nil {
		for i, ns := range c.Nameservers {
			if why := s.Nameservers.Refuse(ns); why != "" {
				reasons = append(reasons, fmt.Sprintf("spec.dnsConfig.nameservers[%d] %s: %s", i, ns, why))
			}
		}
	}
	return strings.Join(reasons, "; ")
}

func allowedVolume(v corev1.VolumeSource) bool {
	for _, ok := range allowedVolumes {
		if ok(v) {
			return true
		}
	}
	return false
}

// controlPlaneKeys lists node-role label keys a pod selects nodes by.
func controlPlaneKeys(pod *corev1.Pod) []string {
	seen := map[string]bool{}
	check := func(k string) {
		if strings.HasPrefix(k, "node-role.kubernetes.io/") {
			seen[k] = true
		}
	}
	for k := range pod.Spec.NodeSelector {
		check(k)
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		if r := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			for _, t := range r.NodeSelectorTerms {
				for _, e := range t.MatchExpressions {
					check(e.Key)
				}
			}
		}
		for _, t := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			for _, e := range t.Preference.MatchExpressions {
				check(e.Key)
			}
		}
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// scheduled reports whether the virtual pod was bound by a binding (which
// marks it PodScheduled), not created with a node name of the tenant's.
func scheduled(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Nameservers is the rule for DNS servers a pod names itself (dnsPolicy
// None, or extra servers in dnsConfig): the virtual cluster's own DNS
// Service, addresses in --endpoint-cidrs, or public addresses. Never the
// host cluster's DNS: not its Service (service CIDR), not a node-local
// cache (link-local), not pod addresses of the host's private networks.
type Nameservers struct {
	ServiceCIDR netip.Prefix
	Allowed     []netip.Prefix
	// virtualDNS is the ClusterIP of the virtual kube-system/kube-dns
	// Service, "" when there is none; the pod syncer keeps it current.
	virtualDNS atomic.Pointer[string]
}

// SetVirtualDNS records the address of the virtual cluster's DNS Service.
func (n *Nameservers) SetVirtualDNS(ip string) {
	if n != nil {
		n.virtualDNS.Store(&ip)
	}
}

// sharedAddressSpace (RFC 6598) is not "private" to net/netip, but many
// clusters take their pod networks from it.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// Refuse returns why a pod may not use server, or "".
func (n *Nameservers) Refuse(server string) string {
	ip, err := netip.ParseAddr(server)
	if err != nil {
		return "not an IP address"
	}
	ip = ip.Unmap()
	if n != nil {
		if dns := n.virtualDNS.Load(); dns != nil && *dns != "" && ip.String() == *dns {
			return ""
		}
	}
	switch {
	case ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast():
		return "loopback, link-local and multicast addresses are the node's or the host cluster's DNS"
	case n != nil && n.ServiceCIDR.IsValid() && n.ServiceCIDR.Contains(ip):
		return "a service address other than this cluster's own DNS is the host's"
	}
	if n != nil {
		for _, p := range n.Allowed {
			if p.Contains(ip) {
				return ""
			}
		}
	}
	if ip.IsPrivate() || sharedAddressSpace.Contains(ip) || !ip.IsGlobalUnicast() {
		return "a private address is only allowed within --endpoint-cidrs"
	}
	return ""
}
