package endpoints

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// Class 6: a selector-less Service's endpoints reach the host only when
// they are this cluster's own running pods or in --endpoint-cidrs.
func TestHostSlicesPointOnlyAtOwnPodsAndAllowedRanges(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	mark := func(o client.Object, kind, ns, name string) client.Object {
		o.SetName(names.HostName(ns, name))
		o.SetNamespace("vc-demo")
		names.Mark(o, translate.Origin{Kind: kind, Namespace: ns, Name: name})
		return o
	}
	pod := func(name, ip string, phase corev1.PodPhase) client.Object {
		p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-1"}, Status: corev1.PodStatus{Phase: phase, PodIPs: []corev1.PodIP{{IP: ip}}}}
		return mark(p, "Pod", "shop", name)
	}
	// Another tenant's pod: in the host namespace of another cluster.
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "vc-other"}, Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.244.9.9"}}}}
	host := fake.NewClientBuilder().WithObjects(
		mark(&corev1.Service{}, "Service", "shop", "db"),
		pod("db-0", "10.244.1.5", corev1.PodRunning),
		pod("old", "10.244.1.6", corev1.PodSucceeded),
		foreign,
	).Build()
	s := New(&syncer.Pair{
		Config: &config.Config{ServiceCIDR: "10.96.0.0/16", Workloads: config.Workloads{EndpointCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}},
		Names:  names, Host: host, HostReader: host,
	}).Syncer.(*Syncer)
	v := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"192.0.2.10"}, NodeName: ptr.To("server-0")},
			{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("server-0")},
			{Addresses: []string{"10.244.1.6"}}, // a finished pod's address
			{Addresses: []string{"10.244.9.9"}}, // another tenant's pod
			{Addresses: []string{"172.18.0.2"}}, // a node
			{Addresses: []string{"10.96.0.1"}},  // the host API Service
			{Addresses: []string{"127.0.0.1"}},  // loopback
			{Addresses: []string{"169.254.169.254"}},
			{Addresses: []string{"not-an-ip"}},
		},
	}
	h, dropped, why, err := s.hostSlice(t.Context(), v)
	if err != nil || why != "" {
		t.Fatalf("refused: %v %s", err, why)
	}
	var got []string
	for _, e := range h.Endpoints {
		got = append(got, e.Addresses...)
	}
	if !slices.Equal(got, []string{"192.0.2.10", "10.244.1.5"}) {
		t.Fatalf("host addresses %v (dropped %v)", got, dropped)
	}
	if h.Endpoints[0].NodeName != nil || *h.Endpoints[1].NodeName != "node-1" {
		t.Errorf("node names are the host's: %v %v", h.Endpoints[0].NodeName, h.Endpoints[1].NodeName)
	}
	if len(dropped) != 7 {
		t.Errorf("dropped %v", dropped)
	}
	if h.Labels[discoveryv1.LabelServiceName] != "db-x-shop-x-demo" || h.Labels[discoveryv1.LabelManagedBy] != managedBy {
		t.Errorf("labels %v", h.Labels)
	}

	// A slice naming a Service whose host name is not that Service's twin.
	v.Labels[discoveryv1.LabelServiceName] = "stolen"
	if err := host.Create(t.Context(), mark(&corev1.Service{}, "Service", "team", "stolen")); err != nil {
		t.Fatal(err)
	}
	bad := &corev1.Service{}
	_ = host.Get(t.Context(), client.ObjectKey{Namespace: "vc-demo", Name: names.HostName("team", "stolen")}, bad)
	bad.Name = names.HostName("shop", "stolen")
	bad.ResourceVersion = ""
	if err := host.Create(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if _, _, why, err := s.hostSlice(t.Context(), v); err != nil || why == "" {
		t.Errorf("a slice for another namespace's Service passed: %v %q", err, why)
	}
}
