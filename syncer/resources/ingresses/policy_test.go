package ingresses

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// Class 7: an Ingress reaches the host only within the platform's hosts,
// classes and annotations, and names only its own namespace's twins.
func TestIngressesStayWithinThePlatformsWord(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	mark := func(o client.Object, kind, ns, name string) client.Object {
		o.SetName(names.HostName(ns, name))
		o.SetNamespace("vc-demo")
		names.Mark(o, translate.Origin{Kind: kind, Namespace: ns, Name: name})
		return o
	}
	host := fake.NewClientBuilder().WithObjects(mark(&corev1.Service{}, "Service", "shop", "web"), mark(&corev1.Secret{}, "Secret", "shop", "tls")).Build()
	s := New(&syncer.Pair{Names: names, Host: host, HostReader: host, Config: &config.Config{Workloads: config.Workloads{
		IngressHosts:       config.Patterns{"*.apps.example.com"},
		IngressClasses:     []string{"public"},
		IngressAnnotations: config.Keys{"nginx.ingress.kubernetes.io/*"},
	}}}).Syncer.(*Syncer)
	ok := func() *networkingv1.Ingress {
		return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "site", Namespace: "shop", Annotations: map[string]string{
			"nginx.ingress.kubernetes.io/ssl-redirect":         "true",
			"nginx.ingress.kubernetes.io/auth-tls-secret":      "shop/tls",
			"nginx.ingress.kubernetes.io/server-snippet":       "evil",
			"warren.dev/cluster":                               "other",
			"traefik.ingress.kubernetes.io/router.middlewares": "kube-system-admin@kubernetescrd",
		}}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("public"),
			TLS:              []networkingv1.IngressTLS{{Hosts: []string{"shop.apps.example.com"}, SecretName: "tls"}},
			Rules: []networkingv1.IngressRule{{Host: "shop.apps.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}},
		}}
	}
	h, why, err := s.hostIngress(t.Context(), ok())
	if err != nil || why != "" {
		t.Fatalf("refused: %v %s", err, why)
	}
	want := map[string]string{"nginx.ingress.kubernetes.io/ssl-redirect": "true", "nginx.ingress.kubernetes.io/auth-tls-secret": "vc-demo/" + names.HostName("shop", "tls")}
	for k, v := range want {
		if h.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, h.Annotations[k], v)
		}
	}
	if len(h.Annotations) != len(want)+4 { // plus the syncer's own origin annotations
		t.Errorf("annotations %v", h.Annotations)
	}
	if h.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name != names.HostName("shop", "web") || h.Spec.TLS[0].SecretName != names.HostName("shop", "tls") {
		t.Errorf("references not translated: %+v", h.Spec)
	}

	// default-backend naming warren's API Service "demo" reaches only the
	// tenant's own Service of that name.
	in := ok()
	in.Annotations["nginx.ingress.kubernetes.io/default-backend"] = "demo"
	if h, why, err := s.hostIngress(t.Context(), in); err != nil || why != "" || h.Annotations["nginx.ingress.kubernetes.io/default-backend"] != names.HostName("shop", "demo") {
		t.Errorf("default-backend: %v %q %v", err, why, h)
	}

	cases := map[string]func(*networkingv1.Ingress){
		"spec.rules[0].host: \"shop.example.com\"": func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "shop.example.com" },
		"spec.rules[0].host: a rule without":       func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "" },
		"spec.defaultBackend": func(i *networkingv1.Ingress) {
			i.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web"}}
		},
		"spec.ingressClassName: \"internal\"": func(i *networkingv1.Ingress) { i.Spec.IngressClassName = ptr.To("internal") },
		"spec.tls[0].hosts[0]":                func(i *networkingv1.Ingress) { i.Spec.TLS[0].Hosts = []string{"api.example.com"} },
		"spec.tls[0].hosts: name":             func(i *networkingv1.Ingress) { i.Spec.TLS[0].Hosts = nil },
		"auth-tls-secret]: \"kube-system/ca\" names another namespace": func(i *networkingv1.Ingress) {
			i.Annotations["nginx.ingress.kubernetes.io/auth-tls-secret"] = "kube-system/ca"
		},
		"server-alias]: \"api.example.com\"": func(i *networkingv1.Ingress) {
			i.Annotations["nginx.ingress.kubernetes.io/server-alias"] = "x.apps.example.com, api.example.com"
		},
		"backend.resource": func(i *networkingv1.Ingress) {
			i.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Secret", Name: "x"}}
		},
		"backend.service.name: the host Service": func(i *networkingv1.Ingress) { i.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "stolen" },
	}
	// The host twin of team/stolen holds the name shop/stolen translates to.
	stolen := mark(&corev1.Service{}, "Service", "team", "stolen")
	stolen.SetName(names.HostName("shop", "stolen"))
	if err := host.Create(t.Context(), stolen); err != nil {
		t.Fatal(err)
	}
	for want, mutate := range cases {
		in := ok()
		mutate(in)
		_, why, err := s.hostIngress(t.Context(), in)
		if err != nil {
			t.Errorf("%s: %v", want, err)
		} else if want == "backend.service.name: the host Service" {
			if !strings.Contains(string(why), "is not the copy of") {
				t.Errorf("%s: refusal %q", want, why)
			}
		} else if !strings.Contains(string(why), want) {
			t.Errorf("refusal %q, want one naming %q", why, want)
		}
	}
}
