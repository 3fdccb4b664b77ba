package ingresses

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// ReasonRefused is the event on a virtual Ingress that does not reach the host.
const ReasonRefused = "IngressRefused"

// classAnnotation is the class before spec.ingressClassName; controllers
// still honour it.
const classAnnotation = "kubernetes.io/ingress.class"

// Annotations of ingress-nginx whose values name objects: when the platform
// lets them through, they are translated like the spec's references, so no
// reference leaves the tenant's own twins.
var (
	secretAnnotations = map[string]bool{
		"nginx.ingress.kubernetes.io/auth-secret":      true,
		"nginx.ingress.kubernetes.io/auth-tls-secret":  true,
		"nginx.ingress.kubernetes.io/proxy-ssl-secret": true,
	}
	serviceAnnotations = map[string]bool{"nginx.ingress.kubernetes.io/default-backend": true}
	hostAnnotations    = map[string]bool{"nginx.ingress.kubernetes.io/server-alias": true}
)

// refusal is why an Ingress does not reach the host, for the tenant.
type refusal string

// hostIngress translates a virtual Ingress, or says why it may not reach
// the host: hosts must match --ingress-hosts (a rule without a host, or a
// default backend, would catch other teams' traffic), a named class must be
// in --ingress-classes, annotations pass only through
// --ingress-annotations, and every Service and Secret named is checked
// against its twin's origin.
func (s *Syncer) hostIngress(ctx context.Context, v *networkingv1.Ingress) (*networkingv1.Ingress, refusal, error) {
	ns := v.Namespace
	w := s.Config.Workloads
	spec := v.Spec.DeepCopy()
	if c := spec.IngressClassName; c != nil && !slices.Contains(w.IngressClasses, *c) {
		return nil, refusal(fmt.Sprintf("spec.ingressClassName: %q is not a class this cluster may use (--ingress-classes: %s)", *c, orNone(w.IngressClasses))), nil
	}
	if spec.DefaultBackend != nil {
		return nil, "spec.defaultBackend: a default backend answers for hosts that are not this cluster's; name the hosts in rules", nil
	}
	if why := s.checkHosts(spec); why != "" {
		return nil, why, nil
	}
	for i := range spec.Rules {
		http := spec.Rules[i].HTTP
		if http == nil {
			continue
		}
		for j := range http.Paths {
			b := &http.Paths[j].Backend
			field := fmt.Sprintf("spec.rules[%d].http.paths[%d].backend", i, j)
			if b.Service == nil {
				return nil, refusal(field + ".resource: only Services of this namespace can be backends"), nil
			}
			name, why, err := s.ref(ctx, "Service", ns, b.Service.Name, field+".service.name")
			if err != nil || why != "" {
				return nil, why, err
			}
			b.Service.Name = name
		}
	}
	for i := range spec.TLS {
		if spec.TLS[i].SecretName == "" {
			continue
		}
		name, why, err := s.ref(ctx, "Secret", ns, spec.TLS[i].SecretName, fmt.Sprintf("spec.tls[%d].secretName", i))
		if err != nil || why != "" {
			return nil, why, err
		}
		spec.TLS[i].SecretName = name
	}
	annotations, why, err := s.annotations(ctx, v)
	if err != nil || why != "" {
		return nil, why, err
	}
	h := &networkingv1.Ingress{Spec: *spec}
	h.Name = s.Names.HostName(ns, v.Name)
	h.Labels = translate.HostLabels(v.Labels)
	h.Annotations = annotations
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: ns, Name: v.Name, UID: string(v.UID)})
	return h, "", nil
}

// checkHosts: every rule and TLS entry names hosts, all within --ingress-hosts.
func (s *Syncer) checkHosts(spec *networkingv1.IngressSpec) refusal {
	allowed := s.Config.Workloads.IngressHosts
	for i, r := range spec.Rules {
		switch {
		case r.Host == "":
			return refusal(fmt.Sprintf("spec.rules[%d].host: a rule without a host answers for every host; name one within %s", i, orNone(allowed)))
		case !allowed.Allows(r.Host):
			return refusal(fmt.Sprintf("spec.rules[%d].host: %q is not a host this cluster may claim (--ingress-hosts: %s)", i, r.Host, orNone(allowed)))
		}
	}
	for i, t := range spec.TLS {
		if len(t.Hosts) == 0 {
			return refusal(fmt.Sprintf("spec.tls[%d].hosts: name the hosts the certificate is for", i))
		}
		for j, h := range t.Hosts {
			if !allowed.Allows(h) {
				return refusal(fmt.Sprintf("spec.tls[%d].hosts[%d]: %q is not a host this cluster may claim (--ingress-hosts: %s)", i, j, h, orNone(allowed)))
			}
		}
	}
	return ""
}

// annotations are the host Ingress's annotations: only keys on
// --ingress-annotations, never one in warren's domain nor a controller
// snippet (configuration injected into a controller every tenant shares);
// the class annotation only with an allowed class; known annotations that
// name Secrets, Services or hosts translated or checked like the spec.
func (s *Syncer) annotations(ctx context.Context, v *networkingv1.Ingress) (map[string]string, refusal, error) {
	w := s.Config.Workloads
	out := map[string]string{}
	for k, val := range v.Annotations {
		if !w.IngressAnnotations.Allows(k) || translate.Reserved(k) || strings.Contains(k, "snippet") {
			continue
		}
		field := "metadata.annotations[" + k + "]"
		switch {
		case k == classAnnotation && !slices.Contains(w.IngressClasses, val):
			return nil, refusal(fmt.Sprintf("%s: %q is not a class this cluster may use (--ingress-classes: %s)", field, val, orNone(w.IngressClasses))), nil
		case secretAnnotations[k] || serviceAnnotations[k]:
			kind := "Secret"
			if serviceAnnotations[k] {
				kind = "Service"
			}
			name := val
			if refNS, refName, ok := strings.Cut(val, "/"); ok {
				if refNS != v.Namespace {
					return nil, refusal(fmt.Sprintf("%s: %q names another namespace", field, val)), nil
				}
				name = refName
			}
			host, why, err := s.ref(ctx, kind, v.Namespace, name, field)
			if err != nil || why != "" {
				return nil, why, err
			}
			if secretAnnotations[k] {
				host = s.Names.HostNamespace + "/" + host
			}
			val = host
		case hostAnnotations[k]:
			for _, h := range strings.Split(val, ",") {
				if h = strings.TrimSpace(h); h != "" && !w.IngressHosts.Allows(h) {
					return nil, refusal(fmt.Sprintf("%s: %q is not a host this cluster may claim (--ingress-hosts: %s)", field, h, orNone(w.IngressHosts))), nil
				}
			}
		}
		out[k] = val
	}
	return out, "", nil
}

// ref checks a reference with the shared check and turns a mismatch into a
// refusal.
func (s *Syncer) ref(ctx context.Context, kind, ns, name, field string) (string, refusal, error) {
	host, err := s.HostRef(ctx, syncer.Ref{Kind: kind, Namespace: ns, Name: name, Field: field})
	if why := syncer.RefReason(err); why != "" {
		return "", refusal(why), nil
	}
	return host, "", err
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
