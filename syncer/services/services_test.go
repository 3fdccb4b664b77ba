package services

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/syncer/clusters"
	"github.com/warren-dev/warren/syncer/translate"
)

func TestAHostServiceIsConfinedToItsCluster(t *testing.T) {
	s := &Syncer{Pair: &clusters.Pair{Names: translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}}}
	v := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Type:        corev1.ServiceTypeLoadBalancer,
			ClusterIP:   "10.96.4.4",
			Selector:    map[string]string{"app": "web"},
			ExternalIPs: []string{"203.0.113.9"},
			Ports:       []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
		},
	}
	h := s.hostService(v)
	if h.Name != "web-x-shop-x-demo" || h.Namespace != "vc-demo" {
		t.Fatalf("identity %s/%s", h.Namespace, h.Name)
	}
	if h.Spec.Type != corev1.ServiceTypeClusterIP || len(h.Spec.ExternalIPs) != 0 || h.Spec.Ports[0].NodePort != 0 {
		t.Errorf("host service exposes more than a ClusterIP: %+v", h.Spec)
	}
	if h.Spec.ClusterIP != "10.96.4.4" || h.Spec.ClusterIPs[0] != "10.96.4.4" {
		t.Errorf("the virtual address is not asked for: %v", h.Spec.ClusterIPs)
	}
	want := map[string]string{"app": "web", translate.LabelCluster: "demo", translate.LabelNamespace: "shop", translate.LabelManagedBy: translate.ManagedByValue}
	for k, val := range want {
		if h.Spec.Selector[k] != val {
			t.Errorf("selector %v lacks %s=%s", h.Spec.Selector, k, val)
		}
	}
	if o, ok := s.Names.OriginOf(h); !ok || o.Kind != Kind || o.Name != "web" {
		t.Errorf("origin %+v %v", o, ok)
	}
}

func TestWhichServicesHaveTwins(t *testing.T) {
	cases := map[string]struct {
		svc  corev1.Service
		want bool
	}{
		"ordinary":             {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}, true},
		"the API":              {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}, false},
		"external name":        {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "kubernetes.default.svc"}}, false},
		"kubernetes elsewhere": {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "shop"}}, true},
	}
	for name, c := range cases {
		if got := Synced(&c.svc); got != c.want {
			t.Errorf("%s: Synced = %v", name, got)
		}
	}
}
