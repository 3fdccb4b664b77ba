package services

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/warren-dev/warren/syncer/clusters"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

func TestAHostServiceIsConfinedToItsCluster(t *testing.T) {
	s := &Syncer{Pair: &clusters.Pair{Config: &config.Config{}, Names: translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}}}
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

// NodePort and LoadBalancer keep their type on the host only when the
// syncer is told so; external IPs never reach the host.
func TestServiceTypesFollowTheFlags(t *testing.T) {
	local := corev1.ServiceExternalTrafficPolicyLocal
	svc := func(typ corev1.ServiceType) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: corev1.ServiceSpec{
				Type: typ, ClusterIP: "10.96.4.4", ExternalIPs: []string{"203.0.113.9"},
				ExternalTrafficPolicy: local, LoadBalancerSourceRanges: []string{"198.51.100.0/24"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
			},
		}
	}
	for _, tc := range []struct {
		typ                    corev1.ServiceType
		nodePorts, lbs         bool
		wantType               corev1.ServiceType
		wantNodePort           int32
		wantPolicy, wantRanges bool
	}{
		{corev1.ServiceTypeNodePort, false, false, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeNodePort, true, false, corev1.ServiceTypeNodePort, 30080, true, false},
		{corev1.ServiceTypeNodePort, false, true, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeLoadBalancer, true, false, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeLoadBalancer, false, true, corev1.ServiceTypeLoadBalancer, 30080, true, true},
		{corev1.ServiceTypeClusterIP, true, true, corev1.ServiceTypeClusterIP, 0, false, false},
	} {
		s := &Syncer{Pair: &clusters.Pair{
			Config: &config.Config{SyncNodePorts: tc.nodePorts, SyncLoadBalancers: tc.lbs},
			Names:  translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"},
		}}
		h := s.hostService(svc(tc.typ))
		name := fmt.Sprintf("%s with node ports %v, load balancers %v", tc.typ, tc.nodePorts, tc.lbs)
		if h.Spec.Type != tc.wantType || h.Spec.Ports[0].NodePort != tc.wantNodePort {
			t.Errorf("%s: host type %s node port %d, want %s %d", name, h.Spec.Type, h.Spec.Ports[0].NodePort, tc.wantType, tc.wantNodePort)
		}
		if (h.Spec.ExternalTrafficPolicy == local) != tc.wantPolicy || (len(h.Spec.LoadBalancerSourceRanges) > 0) != tc.wantRanges {
			t.Errorf("%s: traffic policy %q, source ranges %v", name, h.Spec.ExternalTrafficPolicy, h.Spec.LoadBalancerSourceRanges)
		}
		if len(h.Spec.ExternalIPs) != 0 {
			t.Errorf("%s: external IPs %v reach the host", name, h.Spec.ExternalIPs)
		}
	}
}

func TestTakenTellsAddressFromNodePort(t *testing.T) {
	gk := schema.GroupKind{Kind: "Service"}
	port := apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(0).Child("nodePort"), 30080, "provided port is already allocated")})
	ip := apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs"), []string{"10.96.0.10"}, "failed to allocate IP 10.96.0.10: provided IP is already allocated")})
	other := apierrors.NewInvalid(gk, "web", field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(0).Child("port"), 0, "must be between 1 and 65535")})
	for name, tc := range map[string]struct {
		err          error
		wantIP, port bool
	}{
		"node port": {fmt.Errorf("creating host Service web: %w", port), false, true},
		"address":   {ip, true, false},
		"other":     {other, false, false},
		"none":      {nil, false, false},
	} {
		if gotIP, gotPort := taken(tc.err); gotIP != tc.wantIP || gotPort != tc.port {
			t.Errorf("%s: taken = %v, %v", name, gotIP, gotPort)
		}
	}
}
