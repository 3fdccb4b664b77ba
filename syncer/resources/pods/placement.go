package pods

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/warren-dev/warren/syncer/config"
)

// nodeIdentityKeys are node labels that name one node: selecting on them is
// choosing a host node, which only the platform's placement may do.
var nodeIdentityKeys = map[string]bool{
	corev1.LabelHostname: true,
	"k3s.io/hostname":    true,
}

// placement decides where a host pod may run: the platform's node selector
// and tolerations (--node-selector, --tolerations) over the tenant's, never
// a node by name. It returns what of the tenant's choices it dropped.
func placement(s *corev1.PodSpec, w config.Workloads) (dropped []string) {
	if s.NodeName != "" {
		dropped = append(dropped, "spec.nodeName")
		s.NodeName = ""
	}
	for k := range s.NodeSelector {
		if nodeIdentityKeys[k] {
			dropped = append(dropped, "spec.nodeSelector["+k+"]")
			delete(s.NodeSelector, k)
		}
	}
	if len(w.NodeSelector) > 0 {
		if s.NodeSelector == nil {
			s.NodeSelector = map[string]string{}
		}
		for k, v := range w.NodeSelector {
			if have, ok := s.NodeSelector[k]; ok && have != v {
				dropped = append(dropped, "spec.nodeSelector["+k+"]")
			}
			s.NodeSelector[k] = v
		}
	}
	if len(s.NodeSelector) == 0 {
		s.NodeSelector = nil
	}
	if a := s.Affinity; a != nil && a.NodeAffinity != nil {
		dropped = append(dropped, nodeAffinity(a.NodeAffinity)...)
	}
	tolerations, droppedTolerations := hostTolerations(s.Tolerations, w.Tolerations)
	s.Tolerations = tolerations
	return append(dropped, droppedTolerations...)
}

// nodeAffinity removes the requirements that pick nodes by identity
// (hostname labels, matchFields on metadata.name). A term left without
// requirements is removed, since an empty term matches no node; a required
// affinity left without terms is removed.
func nodeAffinity(na *corev1.NodeAffinity) (dropped []string) {
	clean := func(t *corev1.NodeSelectorTerm, field string) (changed bool) {
		if len(t.MatchFields) > 0 {
			dropped = append(dropped, field+".matchFields")
			t.MatchFields, changed = nil, true
		}
		kept := t.MatchExpressions[:0]
		for _, e := range t.MatchExpressions {
			if nodeIdentityKeys[e.Key] {
				dropped = append(dropped, field+".matchExpressions["+e.Key+"]")
				changed = true
				continue
			}
			kept = append(kept, e)
		}
		t.MatchExpressions = kept
		return changed
	}
	empty := func(t corev1.NodeSelectorTerm) bool { return len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 }
	if r := na.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
		var terms []corev1.NodeSelectorTerm
		for i := range r.NodeSelectorTerms {
			t := r.NodeSelectorTerms[i]
			if changed := clean(&t, fmt.Sprintf("spec.affinity.nodeAffinity.required.nodeSelectorTerms[%d]", i)); !changed || !empty(t) {
				terms = append(terms, t)
			}
		}
		r.NodeSelectorTerms = terms
		if len(terms) == 0 {
			na.RequiredDuringSchedulingIgnoredDuringExecution = nil
		}
	}
	preferred := na.PreferredDuringSchedulingIgnoredDuringExecution[:0]
	for i, p := range na.PreferredDuringSchedulingIgnoredDuringExecution {
		if changed := clean(&p.Preference, fmt.Sprintf("spec.affinity.nodeAffinity.preferred[%d]", i)); !changed || !empty(p.Preference) {
			preferred = append(preferred, p)
		}
	}
	na.PreferredDuringSchedulingIgnoredDuringExecution = preferred
	return dropped
}

// evictionTolerations are the tolerations the virtual API server's
// DefaultTolerationSeconds admission gives every pod: they only say how
// long a pod stays on a node that went away, so they always pass.
var evictionTolerations = []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable}

// hostTolerations are the platform's tolerations plus the tenant's eviction
// timing ones; every other tenant toleration is dropped, since a toleration
// is how a pod reaches nodes the platform keeps for others.
func hostTolerations(tenant, platform []corev1.Toleration) (out []corev1.Toleration, dropped []string) {
	out = append(out, platform...)
	for _, t := range tenant {
		switch {
		case t.Effect == corev1.TaintEffectNoExecute && slices.Contains(evictionTolerations, t.Key) &&
			(t.Operator == corev1.TolerationOpExists || t.Operator == ""):
			out = append(out, t)
		case slices.ContainsFunc(platform, func(p corev1.Toleration) bool { return equality.Semantic.DeepEqual(p, t) }):
			// Already there.
		default:
			dropped = append(dropped, fmt.Sprintf("spec.tolerations[%s]", describeToleration(t)))
		}
	}
	return out, dropped
}

func describeToleration(t corev1.Toleration) string {
	s := t.Key
	if s == "" {
		s = "*"
	}
	if t.Operator == corev1.TolerationOpEqual || (t.Operator == "" && t.Value != "") {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	return s
}
