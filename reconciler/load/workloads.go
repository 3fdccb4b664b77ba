package load

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// InstallNamespace is the namespace warren's own reconciler is installed
// in by config/default. A cluster may never live there.
const InstallNamespace = "warren-system"

// ReservedNamespace says why a host namespace may never hold a virtual
// cluster, or "" when it may. extra names further reserved namespaces
// (the namespace the reconciler runs in, when it is not warren-system).
func ReservedNamespace(ns string, extra ...string) string {
	switch {
	case strings.HasPrefix(ns, "kube-"):
		return "kube-* namespaces are the host's own"
	case ns == "default":
		return "default is the host's shared namespace"
	case ns == InstallNamespace:
		return "warren-system is where warren itself runs"
	}
	for _, e := range extra {
		if ns == e {
			return ns + " is where warren itself runs"
		}
	}
	return ""
}

// hostNamespace checks a definition's spec.hostNamespace: a DNS label, not
// reserved, and not the default namespace of another cluster (vc-<other>).
func (c *checker) hostNamespace(name, ns string) {
	const f = "spec.hostNamespace"
	if ns == "" {
		return
	}
	if len(validation.IsDNS1123Label(ns)) > 0 {
		c.dns(f, ns, validation.IsDNS1123Label)
		return
	}
	if why := ReservedNamespace(ns); why != "" {
		c.add(f, "%q is reserved (%s); a cluster lives in a namespace warren creates for it, by default vc-%s", ns, why, name)
		return
	}
	if other, ok := strings.CutPrefix(ns, "vc-"); ok && other != name {
		c.add(f, "%q is the default namespace of a cluster named %q; name this cluster's vc-%s or one outside vc-*", ns, other, name)
	}
}

// hasMeta reports whether a pattern holds path.Match metacharacters.
func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// workloads checks a Workloads block. inPolicy allows patterns where a
// policy may hold them (node selector values).
func (c *checker) workloads(prefix string, w v1alpha1.Workloads, inPolicy bool) {
	for i, sc := range w.StorageClasses {
		c.dns(fmt.Sprintf("%s.storageClasses[%d]", prefix, i), sc, validation.IsDNS1123Subdomain)
	}
	for k, v := range w.NodeSelector {
		f := prefix + ".nodeSelector." + k
		for _, msg := range validation.IsQualifiedName(k) {
			c.add(f, "key %q is not a valid label key: %s", k, msg)
		}
		if inPolicy && hasMeta(v) {
			c.pattern(f, v)
			continue
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			c.add(f, "%q is not a valid label value: %s", v, msg)
		}
	}
	for i, t := range w.Tolerations {
		c.toleration(fmt.Sprintf("%s.tolerations[%d]", prefix, i), t)
	}
	for i, h := range w.IngressHosts {
		c.hostPattern(fmt.Sprintf("%s.ingressHosts[%d]", prefix, i), h)
	}
	for i, ic := range w.IngressClasses {
		c.dns(fmt.Sprintf("%s.ingressClasses[%d]", prefix, i), ic, validation.IsDNS1123Subdomain)
	}
	for i, a := range w.IngressAnnotations {
		c.annotationKey(fmt.Sprintf("%s.ingressAnnotations[%d]", prefix, i), a)
	}
	for i, a := range w.PodAnnotations {
		c.annotationKey(fmt.Sprintf("%s.podAnnotations[%d]", prefix, i), a)
	}
	for i, cidr := range w.EndpointCIDRs {
		c.endpointCIDR(fmt.Sprintf("%s.endpointCIDRs[%d]", prefix, i), cidr)
	}
}

func (c *checker) toleration(f string, t corev1.Toleration) {
	if t.Key == "" {
		c.add(f+".key", "required: a toleration without a key tolerates every taint, control-plane nodes' too; name the taint's key")
	} else {
		for _, msg := range validation.IsQualifiedName(t.Key) {
			c.add(f+".key", "%q is not a valid taint key: %s", t.Key, msg)
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			c.add(f+".value", "%q is not a valid taint value: %s", t.Value, msg)
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			c.add(f+".value", "must be empty with operator Exists")
		}
	default:
		c.add(f+".operator", "%q is not one of Equal, Exists", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		c.add(f+".effect", "%q is not one of NoSchedule, PreferNoSchedule, NoExecute", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		c.add(f+".tolerationSeconds", "only used with effect NoExecute")
	}
}

// hostPattern checks an ingress host or a glob pattern of hosts.
func (c *checker) hostPattern(f, h string) {
	if !hasMeta(h) {
		c.dns(f, h, validation.IsDNS1123Subdomain)
		return
	}
	c.pattern(f, h)
	if h == "*" {
		c.add(f, "%q would let an Ingress claim any host name, other teams' too; name a domain such as *.apps.example.com", h)
	}
}

// annotationKey checks an allowlist entry: a key, or prefix/* for every
// key under one prefix.
func (c *checker) annotationKey(f, key string) {
	prefix, wildcard := strings.CutSuffix(key, "/*")
	if wildcard {
		for _, msg := range validation.IsDNS1123Subdomain(prefix) {
			c.add(f, "%q: the prefix before /* is not a valid annotation prefix: %s", key, msg)
		}
	} else {
		for _, msg := range validation.IsQualifiedName(key) {
			c.add(f, "%q is not an annotation key or prefix/*: %s", key, msg)
		}
		prefix, _, _ = strings.Cut(key, "/")
	}
	if (wildcard || strings.Contains(key, "/")) && IsWarrenDomain(prefix) {
		c.add(f, "%q is warren's own: the syncer sets warren.dev keys itself and never copies them", key)
	}
}

// IsWarrenDomain reports whether a label or annotation prefix is warren's:
// warren.dev or a subdomain of it. Keys under it are reserved to warren.
func IsWarrenDomain(prefix string) bool {
	return prefix == "warren.dev" || strings.HasSuffix(prefix, ".warren.dev")
}

// forbiddenEndpoints are ranges no tenant endpoint may point at, whatever
// a policy says: loopback, link-local (cloud metadata among them), and
// unspecified or multicast addresses.
var forbiddenEndpoints = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

func (c *checker) endpointCIDR(f, cidr string) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		c.add(f, "%q is not a CIDR such as 10.20.0.0/24: %v", cidr, err)
		return
	}
	if p.Masked() != p {
		c.add(f, "%q has host bits set; did you mean %s?", cidr, p.Masked())
		return
	}
	for _, bad := range forbiddenEndpoints {
		if p.Overlaps(bad) {
			c.add(f, "%q overlaps %s (loopback, link-local, unspecified or multicast), where no endpoint may point", cidr, bad)
			return
		}
	}
}

// namespacePattern checks a policy's hostNamespaces entry.
func (c *checker) namespacePattern(f, p string) {
	c.pattern(f, p)
	if hasMeta(p) {
		return
	}
	if msgs := validation.IsDNS1123Label(p); len(msgs) > 0 {
		c.dns(f, p, validation.IsDNS1123Label)
		return
	}
	if why := ReservedNamespace(p); why != "" {
		c.add(f, "%q is reserved (%s) and never allowed", p, why)
	}
}
