package policy

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
)

// Workloads is what an admitted cluster's workloads may use of the host:
// each field the cluster sets, else its policy's. The syncer enforces it.
func (a Admission) Workloads() v1alpha1.Workloads {
	return Effective(a.Cluster.Object.Spec.Workloads, a.Policy.Object.Spec.Workloads)
}

// Effective merges a cluster's workloads request into its policy's: a field
// the cluster sets wins (admission has checked it stays within the
// policy), an unset one takes the policy's. Node selector pairs add to the
// policy's; a policy pair whose value is a pattern counts only once the
// cluster has filled it.
func Effective(ask, max v1alpha1.Workloads) v1alpha1.Workloads {
	pick := func(a, m []string) []string {
		if a != nil {
			return slices.Clone(a)
		}
		return slices.Clone(m)
	}
	out := v1alpha1.Workloads{
		StorageClasses:     pick(ask.StorageClasses, max.StorageClasses),
		IngressHosts:       pick(ask.IngressHosts, max.IngressHosts),
		IngressClasses:     pick(ask.IngressClasses, max.IngressClasses),
		IngressAnnotations: pick(ask.IngressAnnotations, max.IngressAnnotations),
		PodAnnotations:     pick(ask.PodAnnotations, max.PodAnnotations),
		EndpointCIDRs:      pick(ask.EndpointCIDRs, max.EndpointCIDRs),
		Tolerations:        slices.Clone(max.Tolerations),
	}
	if ask.Tolerations != nil {
		out.Tolerations = slices.Clone(ask.Tolerations)
	}
	static := max.StaticBinding != nil && *max.StaticBinding
	if ask.StaticBinding != nil {
		static = *ask.StaticBinding && static
	}
	if static {
		out.StaticBinding = &static
	}
	selector := map[string]string{}
	for k, v := range max.NodeSelector {
		if !hasMeta(v) {
			selector[k] = v
		}
	}
	maps.Copy(selector, ask.NodeSelector)
	if len(selector) > 0 {
		out.NodeSelector = selector
	}
	return out
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// within reports whether a cluster's entry stays inside a policy's list of
// patterns: it is one of them, or a plain value one of them matches (a
// pattern of the cluster's own could match more than the policy's).
func within(allowed []string, v string) bool {
	return slices.Contains(allowed, v) || (!hasMeta(v) && matchAny(allowed, v))
}

func (j *judge) hostNamespace(reserved []string) {
	vc := j.cluster.Object
	ns := vc.Spec.HostNamespace
	allowed := append([]string{"vc-" + vc.Name}, j.policy.Object.Spec.HostNamespaces...)
	if why := load.ReservedNamespace(ns, reserved...); why != "" {
		j.reject("spec.hostNamespace", "host namespace %q is reserved (%s)", ns, why)
		return
	}
	if ns != "vc-"+vc.Name && !matchAny(allowed[1:], ns) {
		j.reject("spec.hostNamespace", "host namespace %q is not allowed (allowed: %s)", ns, list(allowed))
	}
}

func (j *judge) workloads(ask, max v1alpha1.Workloads) {
	const f = "spec.workloads"
	names := func(field, what string, asked, allowed []string, none string) {
		for i, v := range asked {
			if !within(allowed, v) {
				shown := list(allowed)
				if len(allowed) == 0 {
					shown = none
				}
				j.reject(fmt.Sprintf("%s.%s[%d]", f, field, i), "%s %q is not allowed (allowed: %s)", what, v, shown)
			}
		}
	}
	names("storageClasses", "storage class", ask.StorageClasses, max.StorageClasses, "none; claims that name no class get the host's default")
	if ask.StaticBinding != nil && *ask.StaticBinding && (max.StaticBinding == nil || !*max.StaticBinding) {
		j.reject(f+".staticBinding", "static binding (storageClassName \"\" or volumeName) is not allowed: a claim could bind another team's volume")
	}
	j.nodeSelector(ask.NodeSelector, max.NodeSelector)
	for i, t := range ask.Tolerations {
		if !slices.ContainsFunc(max.Tolerations, func(m corev1.Toleration) bool { return equality.Semantic.DeepEqual(m, t) }) {
			j.reject(fmt.Sprintf("%s.tolerations[%d]", f, i), "toleration %s is not allowed (allowed: %s)", tolerationString(t), tolerationList(max.Tolerations))
		}
	}
	names("ingressHosts", "ingress host", ask.IngressHosts, max.IngressHosts, "none")
	names("ingressClasses", "ingress class", ask.IngressClasses, max.IngressClasses, "none; Ingresses that name no class get the host's default")
	names("ingressAnnotations", "Ingress annotation", ask.IngressAnnotations, max.IngressAnnotations, "none")
	names("podAnnotations", "pod annotation", ask.PodAnnotations, max.PodAnnotations, "none")
	for i, c := range ask.EndpointCIDRs {
		if !cidrWithin(max.EndpointCIDRs, c) {
			j.reject(fmt.Sprintf("%s.endpointCIDRs[%d]", f, i), "endpoint range %s is not inside an allowed range (allowed: %s)", c, list(max.EndpointCIDRs))
		}
	}
}

// nodeSelector allows a cluster to fill or repeat the policy's pairs, and
// nothing else: a pair of its own could aim pods at one chosen node.
func (j *judge) nodeSelector(ask, max map[string]string) {
	const f = "spec.workloads.nodeSelector"
	policyPairs := make([]string, 0, len(max))
	for _, k := range slices.Sorted(maps.Keys(max)) {
		policyPairs = append(policyPairs, k+"="+max[k])
	}
	for _, k := range slices.Sorted(maps.Keys(ask)) {
		v := ask[k]
		want, ok := max[k]
		switch {
		case !ok:
			j.reject(f+"."+k, "node selector key %q is not allowed (the policy's: %s)", k, list(policyPairs))
		case !within([]string{want}, v):
			j.reject(f+"."+k, "node selector %s=%s is not allowed (the policy's: %s=%s)", k, v, k, want)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(max)) {
		if _, ok := ask[k]; !ok && hasMeta(max[k]) {
			j.reject(f, "required: the policy's node selector %s=%s needs a value that matches it", k, max[k])
		}
	}
}

func cidrWithin(allowed []string, c string) bool {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		ap, err := netip.ParsePrefix(a)
		if err == nil && ap.Bits() <= p.Bits() && ap.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func tolerationString(t corev1.Toleration) string {
	s := t.Key
	if t.Operator == corev1.TolerationOpExists {
		s += " Exists"
	} else {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	if t.TolerationSeconds != nil {
		s += fmt.Sprintf(" for %ds", *t.TolerationSeconds)
	}
	return s
}

func tolerationList(ts []corev1.Toleration) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = tolerationString(t)
	}
	sort.Strings(out)
	return list(out)
}
