package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Workloads is what the platform lets this cluster's workloads use of the
// host, as the reconciler renders it from the tenant's policy. Every field's
// zero value is the safe default: nothing beyond the host's defaults.
type Workloads struct {
	// StorageClasses are the host classes a claim may name (empty: only the
	// host default, for claims that name none).
	StorageClasses []string
	// AllowStaticBinding lets claims pick host volumes (storageClassName ""
	// or volumeName, or a volume selector).
	AllowStaticBinding bool
	// NodeSelector is put on every host pod, over the tenant's own.
	NodeSelector map[string]string
	// Tolerations are the host pods' only tolerations besides the
	// not-ready/unreachable eviction ones.
	Tolerations []corev1.Toleration
	// IngressHosts are glob patterns (path.Match) every Ingress host must match.
	IngressHosts Patterns
	// IngressClasses are the classes an Ingress may name.
	IngressClasses []string
	// IngressAnnotations and PodAnnotations are the annotation keys that
	// reach the host: a key, or "prefix/*".
	IngressAnnotations Keys
	PodAnnotations     Keys
	// EndpointCIDRs are ranges endpoints of selector-less Services may name
	// besides this cluster's own pods.
	EndpointCIDRs []netip.Prefix
}

// workloadFlags holds the raw flag values until they are checked.
type workloadFlags struct {
	storageClasses, ingressHosts, ingressClasses []string
	ingressAnnotations, podAnnotations           []string
	endpointCIDRs                                []string
	nodeSelector                                 map[string]string
	tolerations                                  string
}

func (f *workloadFlags) bind(fs *pflag.FlagSet, c *Config) {
	fs.StringSliceVar(&f.storageClasses, "storage-classes", nil, "host storage classes claims may name (empty: only the host default, for claims naming none)")
	fs.BoolVar(&c.Workloads.AllowStaticBinding, "allow-static-binding", false, "let claims bind chosen host volumes (storageClassName \"\", volumeName, selector)")
	fs.StringToStringVar(&f.nodeSelector, "node-selector", nil, "node labels every host pod is placed by, k=v,k2=v2 (the tenant's choices cannot leave them)")
	fs.StringVar(&f.tolerations, "tolerations", "", "JSON array of core/v1 Tolerations every host pod gets; tenants' other tolerations are dropped")
	fs.StringSliceVar(&f.ingressHosts, "ingress-hosts", nil, "glob patterns (path.Match) Ingress hosts must match, e.g. *.apps.example.com (empty: no Ingress reaches the host)")
	fs.StringSliceVar(&f.ingressClasses, "ingress-classes", nil, "ingress classes an Ingress may name (empty: only the host default)")
	fs.StringSliceVar(&f.ingressAnnotations, "ingress-annotations", nil, "Ingress annotation keys copied to the host: key or prefix/* (empty: none)")
	fs.StringSliceVar(&f.podAnnotations, "pod-annotations", nil, "pod annotation keys copied to the host: key or prefix/* (empty: none)")
	fs.StringSliceVar(&f.endpointCIDRs, "endpoint-cidrs", nil, "CIDRs endpoints of selector-less Services may point at besides this cluster's own pods (empty: none)")
}

// parse checks the raw values and fills w.
func (f *workloadFlags) parse(w *Workloads) error {
	w.StorageClasses, w.IngressClasses = nonEmpty(f.storageClasses), nonEmpty(f.ingressClasses)
	for _, c := range append(append([]string{}, w.StorageClasses...), w.IngressClasses...) {
		if errs := validation.IsDNS1123Subdomain(c); len(errs) > 0 {
			return fmt.Errorf("--storage-classes/--ingress-classes: %q: %s", c, strings.Join(errs, "; "))
		}
	}
	for k, v := range f.nodeSelector {
		if errs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(errs) > 0 {
			return fmt.Errorf("--node-selector: %s=%s: %s", k, v, strings.Join(errs, "; "))
		}
	}
	w.NodeSelector = f.nodeSelector
	if strings.TrimSpace(f.tolerations) != "" {
		if err := json.Unmarshal([]byte(f.tolerations), &w.Tolerations); err != nil {
			return fmt.Errorf("--tolerations: want a JSON array of tolerations: %w", err)
		}
		for i, t := range w.Tolerations {
			if err := checkToleration(t); err != nil {
				return fmt.Errorf("--tolerations[%d]: %w", i, err)
			}
		}
	}
	for _, h := range nonEmpty(f.ingressHosts) {
		if _, err := path.Match(h, ""); err != nil {
			return fmt.Errorf("--ingress-hosts: %q: %w", h, err)
		}
		w.IngressHosts = append(w.IngressHosts, strings.ToLower(h))
	}
	var err error
	if w.IngressAnnotations, err = keys("--ingress-annotations", f.ingressAnnotations); err != nil {
		return err
	}
	if w.PodAnnotations, err = keys("--pod-annotations", f.podAnnotations); err != nil {
		return err
	}
	for _, c := range nonEmpty(f.endpointCIDRs) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return fmt.Errorf("--endpoint-cidrs: %q: %w", c, err)
		}
		w.EndpointCIDRs = append(w.EndpointCIDRs, p.Masked())
	}
	return nil
}

func checkToleration(t corev1.Toleration) error {
	switch t.Operator {
	case corev1.TolerationOpExists, corev1.TolerationOpEqual, "":
	default:
		return fmt.Errorf("operator %q: want Exists or Equal", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		return fmt.Errorf("effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	if t.Key == "" && t.Operator != corev1.TolerationOpExists {
		return fmt.Errorf("an empty key needs operator Exists")
	}
	return nil
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func keys(flag string, in []string) (Keys, error) {
	var out Keys
	for _, k := range nonEmpty(in) {
		name := strings.TrimSuffix(k, "/*")
		if name != k {
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				return nil, fmt.Errorf("%s: %q: the prefix is not a DNS subdomain: %s", flag, k, strings.Join(errs, "; "))
			}
		} else if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("%s: %q: %s", flag, k, strings.Join(errs, "; "))
		}
		out = append(out, k)
	}
	return out, nil
}

// Keys is an allowlist of annotation keys: "key" allows that key,
// "prefix/*" every key with that prefix.
type Keys []string

// Allows reports whether key is on the list.
func (l Keys) Allows(key string) bool {
	for _, k := range l {
		if prefix, ok := strings.CutSuffix(k, "/*"); ok {
			if p, _, found := strings.Cut(key, "/"); found && p == prefix {
				return true
			}
		} else if k == key {
			return true
		}
	}
	return false
}

// Patterns is an allowlist of host names as path.Match glob patterns.
type Patterns []string

// Allows reports whether host matches one of the patterns. Host names are
// compared in lower case.
func (l Patterns) Allows(host string) bool {
	host = strings.ToLower(host)
	for _, p := range l {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}
