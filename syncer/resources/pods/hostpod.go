package pods

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// AnnotationServiceAccount carries the virtual pod's service account name, so
// downward-API references to spec.serviceAccountName keep their meaning.
const AnnotationServiceAccount = "warren.dev/service-account"

// APIHostName is what in-cluster clients connect to (KUBERNETES_SERVICE_HOST):
// a name the virtual API server's certificate carries on every distro, and
// that the pod's host alias resolves to the host Service serving that API.
// The Service's own address is the host's to choose, after the certificate
// was made, so a client verifying it by address would be refused.
const APIHostName = "kubernetes.default.svc"

// Env is what translating a pod needs to know beyond the pod itself.
type Env struct {
	Names translate.Translator
	// DNSServer is the ClusterIP of the virtual cluster's kube-dns Service
	// ("" when there is none: the pod then gets the node's resolver, never the
	// host cluster's DNS).
	DNSServer string
	// APIHost is the ClusterIP of the host Service that serves the virtual
	// API; kubernetes.default and KUBERNETES_SERVICE_HOST point at it.
	APIHost string
	// Services are the virtual Services of the pod's namespace, for the
	// environment variables a kubelet derives from them.
	Services      []corev1.Service
	ClusterDomain string
	// Workloads is the platform's placement and annotation policy.
	Workloads config.Workloads
}

// TokenKey names the key in the pod's token Secret that holds the token of
// projected volume vol, source index i.
func TokenKey(vol string, i int) string { return vol + "-" + strconv.Itoa(i) }

// HostPod translates a virtual pod into its host twin. The result carries
// no reference to a host-side object the tenant did not bring along.
func HostPod(v *corev1.Pod, env Env) *corev1.Pod {
	names := env.Names
	ns := v.Namespace
	h := &corev1.Pod{}
	h.Name = names.HostName(ns, v.Name)
	h.Namespace = names.HostNamespace
	h.Labels = translate.HostLabels(v.Labels)
	h.Annotations = hostAnnotations(v.Annotations, env.Workloads.PodAnnotations)
	h.Annotations[AnnotationServiceAccount] = v.Spec.ServiceAccountName
	names.Mark(h, translate.Origin{Kind: "Pod", Namespace: ns, Name: v.Name, UID: string(v.UID)})

	s := v.Spec.DeepCopy()
	placement(s, env.Workloads)
	s.ServiceAccountName = ""
	s.DeprecatedServiceAccount = ""
	s.AutomountServiceAccountToken = ptr.To(false)
	s.EnableServiceLinks = ptr.To(false)
	s.PriorityClassName = ""
	s.Priority = nil
	s.PreemptionPolicy = nil
	s.SchedulerName = ""
	s.RuntimeClassName = nil
	s.Overhead = nil
	s.ReadinessGates = nil // set by virtual controllers; the host kubelet never sees them
	s.SchedulingGates = nil
	if s.Hostname == "" && len(validation.IsDNS1123Label(v.Name)) == 0 {
		s.Hostname = v.Name
	}
	if s.Subdomain != "" {
		s.Subdomain = names.HostName(ns, s.Subdomain)
	}
	translateAffinity(names, ns, s)
	translateDNS(env, ns, s)
	if env.APIHost != "" {
		d := env.ClusterDomain
		s.HostAliases = append(s.HostAliases, corev1.HostAlias{IP: env.APIHost, Hostnames: []string{
			"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + d,
		}})
	}
	for i := range s.ImagePullSecrets {
		s.ImagePullSecrets[i].Name = names.HostName(ns, s.ImagePullSecrets[i].Name)
	}
	tokenSecret := TokenSecretName(names, v)
	for i := range s.Volumes {
		translateVolume(names, v, tokenSecret, &s.Volumes[i])
	}
	svcEnv := serviceEnv(env, v)
	for i := range s.InitContainers {
		translateContainer(names, ns, svcEnv, &s.InitContainers[i])
	}
	for i := range s.Containers {
		translateContainer(names, ns, svcEnv, &s.Containers[i])
	}
	s.EphemeralContainers = nil
	h.Spec = *s
	return h
}

// TokenSecretName is the host Secret holding a pod's service-account tokens.
func TokenSecretName(names translate.Translator, v *corev1.Pod) string {
	return names.DerivedName("token", v.Namespace, v.Name)
}

// TokenProjection is a projected service-account token a pod asks for.
type TokenProjection struct {
	Key               string
	Audience          string
	ExpirationSeconds int64
}

// TokenProjections lists the projected service-account tokens of a pod.
func TokenProjections(v *corev1.Pod) []TokenProjection {
	var out []TokenProjection
	for _, vol := range v.Spec.Volumes {
		if vol.Projected == nil {
			continue
		}
		for i, src := range vol.Projected.Sources {
			if t := src.ServiceAccountToken; t != nil {
				exp := int64(3600)
				if t.ExpirationSeconds != nil {
					exp = *t.ExpirationSeconds
				}
				out = append(out, TokenProjection{Key: TokenKey(vol.Name, i), Audience: t.Audience, ExpirationSeconds: exp})
			}
		}
	}
	return out
}

// hostAnnotations are the annotations of the host pod: only keys the
// platform allows (--pod-annotations), since host components act on pod
// annotations (network attachments, address pools, mesh exclusions), and
// never one in warren's domain.
func hostAnnotations(in map[string]string, allow config.Keys) map[string]string {
	out := make(map[string]string, 6)
	for k, v := range in {
		if allow.Allows(k) && !translate.Reserved(k) {
			out[k] = v
		}
	}
	return out
}

// translateAffinity confines pod (anti-)affinity and spreading to pods of
// this cluster and the namespaces the tenant meant.
func translateAffinity(names translate.Translator, ns string, s *corev1.PodSpec) {
	term := func(t *corev1.PodAffinityTerm) {
		namespaces := t.Namespaces
		if len(namespaces) == 0 {
			namespaces = []string{ns}
		}
		if t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0 {
			// An empty namespace selector means every namespace: of this
			// virtual cluster, which the cluster label already ensures.
			sel := names.HostLabelSelector(nil, t.LabelSelector)
			sel.MatchExpressions = sel.MatchExpressions[:len(sel.MatchExpressions)-1]
			t.LabelSelector = sel
		} else {
			t.LabelSelector = names.HostLabelSelector(namespaces, t.LabelSelector)
		}
		t.Namespaces = nil
		t.NamespaceSelector = nil
	}
	if a := s.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				term(&pa.RequiredDuringSchedulingIgnoredDuringExecution[i])
			}
			for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				term(&pa.PreferredDuringSchedulingIgnoredDuringExecution[i].PodAffinityTerm)
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				term(&pa.RequiredDuringSchedulingIgnoredDuringExecution[i])
			}
			for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				term(&pa.PreferredDuringSchedulingIgnoredDuringExecution[i].PodAffinityTerm)
			}
		}
	}
	for i := range s.TopologySpreadConstraints {
		c := &s.TopologySpreadConstraints[i]
		c.LabelSelector = names.HostLabelSelector([]string{ns}, c.LabelSelector)
	}
}

// translateDNS points cluster DNS at the virtual cluster's DNS service.
func translateDNS(env Env, ns string, s *corev1.PodSpec) {
	switch s.DNSPolicy {
	case corev1.DNSNone, corev1.DNSDefault:
		return
	}
	if env.DNSServer == "" {
		s.DNSPolicy = corev1.DNSDefault
		return
	}
	d := env.ClusterDomain
	cfg := &corev1.PodDNSConfig{
		Nameservers: []string{env.DNSServer},
		Searches:    []string{ns + ".svc." + d, "svc." + d, d},
		Options:     []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("5")}},
	}
	if s.DNSConfig != nil {
		cfg.Nameservers = append(cfg.Nameservers, s.DNSConfig.Nameservers...)
		cfg.Searches = append(cfg.Searches, s.DNSConfig.Searches...)
		cfg.Options = append(cfg.Options, s.DNSConfig.Options...)
	}
	s.DNSPolicy = corev1.DNSNone
	s.DNSConfig = cfg
}

func translateVolume(names translate.Translator, pod *corev1.Pod, tokenSecret string, v *corev1.Volume) {
	ns := pod.Namespace
	switch {
	case v.Ephemeral != nil:
		// The template never reaches the host: the virtual cluster makes
		// the claim, the claim syncer translates it (class, data source,
		// static binding) like any other, and the host pod mounts its twin.
		v.VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: names.HostName(ns, syncer.EphemeralClaimName(pod, v.Name)),
		}}
	case v.ConfigMap != nil:
		v.ConfigMap.Name = names.HostName(ns, v.ConfigMap.Name)
	case v.Secret != nil:
		v.Secret.SecretName = names.HostName(ns, v.Secret.SecretName)
	case v.PersistentVolumeClaim != nil:
		v.PersistentVolumeClaim.ClaimName = names.HostName(ns, v.PersistentVolumeClaim.ClaimName)
	case v.DownwardAPI != nil:
		for i := range v.DownwardAPI.Items {
			v.DownwardAPI.Items[i].FieldRef = hostFieldRef(v.DownwardAPI.Items[i].FieldRef)
		}
	case v.Projected != nil:
		for i := range v.Projected.Sources {
			src := &v.Projected.Sources[i]
			switch {
			case src.ConfigMap != nil:
				src.ConfigMap.Name = names.HostName(ns, src.ConfigMap.Name)
			case src.Secret != nil:
				src.Secret.Name = names.HostName(ns, src.Secret.Name)
			case src.DownwardAPI != nil:
				for j := range src.DownwardAPI.Items {
					src.DownwardAPI.Items[j].FieldRef = hostFieldRef(src.DownwardAPI.Items[j].FieldRef)
				}
			case src.ServiceAccountToken != nil:
				// The token comes from the virtual API, never the host's.
				path := src.ServiceAccountToken.Path
				src.ServiceAccountToken = nil
				src.Secret = &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: tokenSecret},
					Items:                []corev1.KeyToPath{{Key: TokenKey(v.Name, i), Path: path}},
				}
			}
		}
	}
}

// hostFieldRef keeps downward-API fields meaning the virtual pod's values.
func hostFieldRef(f *corev1.ObjectFieldSelector) *corev1.ObjectFieldSelector {
	if f == nil {
		return nil
	}
	annotation := map[string]string{
		"metadata.name":           v1alpha1.OriginNameAnnotation,
		"metadata.namespace":      v1alpha1.OriginNamespaceAnnotation,
		"metadata.uid":            v1alpha1.OriginUIDAnnotation,
		"spec.serviceAccountName": AnnotationServiceAccount,
	}[f.FieldPath]
	if annotation == "" {
		return f
	}
	return &corev1.ObjectFieldSelector{APIVersion: f.APIVersion, FieldPath: "metadata.annotations['" + annotation + "']"}
}

func translateContainer(names translate.Translator, ns string, svcEnv []corev1.EnvVar, c *corev1.Container) {
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil {
			if vf.ConfigMapKeyRef != nil {
				vf.ConfigMapKeyRef.Name = names.HostName(ns, vf.ConfigMapKeyRef.Name)
			}
			if vf.SecretKeyRef != nil {
				vf.SecretKeyRef.Name = names.HostName(ns, vf.SecretKeyRef.Name)
			}
			vf.FieldRef = hostFieldRef(vf.FieldRef)
		}
	}
	for i := range c.EnvFrom {
		if r := c.EnvFrom[i].ConfigMapRef; r != nil {
			r.Name = names.HostName(ns, r.Name)
		}
		if r := c.EnvFrom[i].SecretRef; r != nil {
			r.Name = names.HostName(ns, r.Name)
		}
	}
	// Service variables come first so the container's own win, as with a kubelet.
	if len(svcEnv) > 0 {
		c.Env = append(append([]corev1.EnvVar{}, svcEnv...), c.Env...)
	}
}

// serviceEnv is the environment a kubelet derives from the virtual
// services: the virtual API as "kubernetes" always, the namespace's services
// unless the pod turned service links off.
func serviceEnv(env Env, v *corev1.Pod) []corev1.EnvVar {
	var out []corev1.EnvVar
	if env.APIHost != "" {
		vars := serviceVars("kubernetes", env.APIHost, []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}})
		vars[0].Value = APIHostName // KUBERNETES_SERVICE_HOST
		out = append(out, vars...)
	}
	if v.Spec.EnableServiceLinks != nil && !*v.Spec.EnableServiceLinks {
		return out
	}
	svcs := append([]corev1.Service(nil), env.Services...)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	for _, svc := range svcs {
		ip := svc.Spec.ClusterIP
		if svc.Namespace != v.Namespace || ip == "" || ip == corev1.ClusterIPNone ||
			(svc.Namespace == "default" && svc.Name == "kubernetes") {
			continue
		}
		out = append(out, serviceVars(svc.Name, ip, svc.Spec.Ports)...)
	}
	return out
}

func serviceVars(name, ip string, ports []corev1.ServicePort) []corev1.EnvVar {
	if len(ports) == 0 {
		return nil
	}
	prefix := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	first := ports[0]
	out := []corev1.EnvVar{
		{Name: prefix + "_SERVICE_HOST", Value: ip},
		{Name: prefix + "_SERVICE_PORT", Value: strconv.Itoa(int(first.Port))},
	}
	for _, p := range ports {
		if p.Name != "" {
			out = append(out, corev1.EnvVar{Name: prefix + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), Value: strconv.Itoa(int(p.Port))})
		}
	}
	url := func(p corev1.ServicePort) string {
		return fmt.Sprintf("%s://%s:%d", strings.ToLower(string(p.Protocol)), ip, p.Port)
	}
	out = append(out, corev1.EnvVar{Name: prefix + "_PORT", Value: url(first)})
	for _, p := range ports {
		base := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(string(p.Protocol)))
		out = append(out,
			corev1.EnvVar{Name: base, Value: url(p)},
			corev1.EnvVar{Name: base + "_PROTO", Value: strings.ToLower(string(p.Protocol))},
			corev1.EnvVar{Name: base + "_PORT", Value: strconv.Itoa(int(p.Port))},
			corev1.EnvVar{Name: base + "_ADDR", Value: ip},
		)
	}
	return out
}
