package ingresses

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestIngressesGoDownRenamedAndTheirStatusComesUp(t *testing.T) {
	prefix := networkingv1.PathTypePrefix
	spec := func(service, secret string) networkingv1.IngressSpec {
		backend := networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}}
		return networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: backend}}}}}},
			TLS: []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: secret}},
		}
	}
	v := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-web", Annotations: map[string]string{
			"nginx.ingress.kubernetes.io/rewrite-target":        "/",
			"nginx.ingress.kubernetes.io/configuration-snippet": "evil",
			"warren.dev/cluster":                                "forged",
		}},
		Spec: spec("web", "tls"),
	}
	twin := func(status networkingv1.IngressStatus) *networkingv1.Ingress {
		h := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
			Spec:   spec(synctest.Names.HostName("shop", "web"), synctest.Names.HostName("shop", "tls")),
			Status: status}
		return synctest.Twin(Kind, v, h)
	}
	lb := networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.7"}}}}
	withStatus := v.DeepCopy()
	withStatus.Status = lb
	catchAll := v.DeepCopy()
	catchAll.Spec.DefaultBackend = &catchAll.Spec.Rules[0].HTTP.Paths[0].Backend
	resource := v.DeepCopy()
	resource.Spec.Rules[0].HTTP.Paths[0].Backend = networkingv1.IngressBackend{Resource: &corev1.TypedLocalObjectReference{Kind: "Secret", Name: "anything"}}
	otherHost := v.DeepCopy()
	otherHost.Spec.Rules[0].Host = "bank.example.org"
	policy := config.Config{Workloads: config.Workloads{
		IngressHosts:       config.Patterns{"*.example.com"},
		IngressAnnotations: config.Keys{"nginx.ingress.kubernetes.io/*"},
	}}
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name: "backends and TLS Secrets are renamed; snippets and reserved keys stay behind", Config: policy,
		InitialVirtual: []client.Object{v}, Request: key,
		ExpectedVirtual: []client.Object{v},
		ExpectedHost:    []client.Object{twin(networkingv1.IngressStatus{})},
	}, {
		Name: "the host's load balancer comes up", Config: policy,
		InitialVirtual: []client.Object{v}, InitialHost: []client.Object{twin(lb)}, Request: key,
		ExpectedVirtual: []client.Object{withStatus},
		ExpectedHost:    []client.Object{twin(lb)},
	}, {
		Name:           "without --ingress-hosts nothing reaches the host",
		InitialVirtual: []client.Object{v}, Request: key,
		ExpectedVirtual: []client.Object{v},
		ExpectedHost:    []client.Object{},
		Events:          []string{ReasonRefused, "spec.rules[0].host"},
	}, {
		Name: "a host outside the platform's word takes the twin away", Config: policy,
		InitialVirtual: []client.Object{otherHost}, InitialHost: []client.Object{twin(lb)}, Request: key,
		ExpectedVirtual: []client.Object{otherHost},
		Events:          []string{ReasonRefused, "bank.example.org"},
	}, {
		Name: "a default backend is refused: it answers for others' hosts", Config: policy,
		InitialVirtual: []client.Object{catchAll}, Request: key,
		ExpectedVirtual: []client.Object{catchAll},
		Events:          []string{ReasonRefused, "spec.defaultBackend"},
	}, {
		Name: "a resource backend is refused: it could name any host object", Config: policy,
		InitialVirtual: []client.Object{resource}, Request: key,
		ExpectedVirtual: []client.Object{resource},
		Events:          []string{ReasonRefused, ".resource"},
	}, {
		Name: "a foreign Ingress of the twin's name is left alone", Config: policy,
		InitialVirtual: []client.Object{v}, InitialHost: []client.Object{synctest.Foreign(v, &networkingv1.Ingress{})}, Request: key,
		ExpectedVirtual: []client.Object{v},
		ExpectedHost:    []client.Object{synctest.Foreign(v, &networkingv1.Ingress{})},
		Events:          []string{"HostNameConflict"},
	}, {
		Name: "a deleted Ingress takes its twin", Config: policy,
		InitialHost: []client.Object{twin(lb)}, Request: key,
	}})
}
