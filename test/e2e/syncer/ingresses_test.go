package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// With ingresses enabled, an Ingress reaches the host pointing at the host
// twins of its Service and TLS Secret, without snippet annotations.
func TestIngressesPointAtTwins(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "public")
	create(t, ctx, w.virtualC,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tls", Namespace: ns}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"tls.crt": []byte("c"), "tls.key": []byte("k")}},
		&networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "site", Namespace: ns, Annotations: map[string]string{
			"nginx.ingress.kubernetes.io/configuration-snippet": "evil", "nginx.ingress.kubernetes.io/ssl-redirect": "true"}},
			Spec: networkingv1.IngressSpec{
				TLS: []networkingv1.IngressTLS{{Hosts: []string{"shop.example"}, SecretName: "tls"}},
				Rules: []networkingv1.IngressRule{{Host: "shop.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
						Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}},
				}}}},
			}},
	)
	h := &networkingv1.Ingress{}
	testkit.Eventually(t, 30*time.Second, "the host ingress and its TLS secret", func() (bool, string) {
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "site")}, h); err != nil {
			return false, err.Error()
		}
		err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "tls")}, &corev1.Secret{})
		return err == nil, fmt.Sprint(err)
	})
	if got := h.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name; got != w.names.HostName(ns, "web") {
		t.Errorf("backend %s", got)
	}
	if h.Spec.TLS[0].SecretName != w.names.HostName(ns, "tls") {
		t.Errorf("tls secret %s", h.Spec.TLS[0].SecretName)
	}
	if _, ok := h.Annotations["nginx.ingress.kubernetes.io/configuration-snippet"]; ok || h.Annotations["nginx.ingress.kubernetes.io/ssl-redirect"] != "true" {
		t.Errorf("annotations %v", h.Annotations)
	}
}
