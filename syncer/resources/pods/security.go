package pods

import (
	"fmt"
	"sort"
	"strings"

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
