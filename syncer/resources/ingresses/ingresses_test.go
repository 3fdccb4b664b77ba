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
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestIngressesGoDownRenamedAndTheirStatusComesUp(t *testing.T) {
	backend := func(name string) *networkingv1.IngressBackend {
		return &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}
	}
	prefix := networkingv1.PathTypePrefix
	spec := func(service, secret string, resource bool) networkingv1.IngressSpec {
		paths := []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: *backend(service)}}
		if resource {
			paths = append(paths, networkingv1.HTTPIngressPath{Path: "/files", PathType: &prefix, Backend: networkingv1.IngressBackend{
				Resource: &corev1.TypedLocalObjectReference{Kind: "Secret", Name: "anything"},
			}})
		}
		return networkingv1.IngressSpec{
			DefaultBackend: backend(service),
			Rules:          []networkingv1.IngressRule{{Host: "shop.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}}}},
			TLS:            []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: secret}},
		}
	}
	v := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-web", Annotations: map[string]string{
			"nginx.ingress.kubernetes.io/rewrite-target":        "/",
			"nginx.ingress.kubernetes.io/configuration-snippet": "evil",
			"warren.dev/cluster":                                "forged",
		}},
		Spec: spec("web", "tls", true),
	}
	twin := func(status networkingv1.IngressStatus) *networkingv1.Ingress {
		h := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
			Spec:   spec(synctest.Names.HostName("shop", "web"), synctest.Names.HostName("shop", "tls"), false),
			Status: status}
		return synctest.Twin(Kind, v, h)
	}
	lb := networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.0.2.7"}}}}
	withStatus := v.DeepCopy()
	withStatus.Status = lb
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name:           "backends and TLS Secrets are renamed; resource backends, snippets and reserved keys stay behind",
		InitialVirtual: []client.Object{v}, Request: key,
		ExpectedVirtual: []client.Object{v},
		ExpectedHost:    []client.Object{twin(networkingv1.IngressStatus{})},
	}, {
		Name:           "the host's load balancer comes up",
		InitialVirtual: []client.Object{v}, InitialHost: []client.Object{twin(lb)}, Request: key,
		ExpectedVirtual: []client.Object{withStatus},
		ExpectedHost:    []client.Object{twin(lb)},
	}, {
		Name:        "a deleted Ingress takes its twin",
		InitialHost: []client.Object{twin(lb)}, Request: key,
	}})
}
