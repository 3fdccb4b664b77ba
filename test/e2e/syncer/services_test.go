package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// sliceIPs collects the endpoint addresses of a service's slices.
func sliceIPs(t *testing.T, c client.Client, ns, service string) []string {
	t.Helper()
	var list discoveryv1.EndpointSliceList
	if err := c.List(t.Context(), &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			ips = append(ips, e.Addresses...)
		}
	}
	slices.Sort(ips)
	return ips
}

// A tenant's Service answers on the same ClusterIP on both sides, and both
// sides' endpoints hold the pods' IPs.
func TestServicesShareTheClusterIPAndPodIPs(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "store")
	create(t, ctx, w.virtualC, deployment(ns, "api", 2), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "api"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	hostName := w.names.HostName(ns, "api")

	var podIPs []string
	testkit.Eventually(t, 60*time.Second, "2 virtual pods Running with IPs", func() (bool, string) {
		var pods corev1.PodList
		if err := w.virtualC.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		podIPs = nil
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				podIPs = append(podIPs, p.Status.PodIP)
			}
		}
		slices.Sort(podIPs)
		return len(podIPs) == 2 && len(pods.Items) == 2, fmt.Sprintf("running pods with IPs: %v", podIPs)
	})
	testkit.Eventually(t, 30*time.Second, "the same ClusterIP on both sides", func() (bool, string) {
		v, h := &corev1.Service{}, &corev1.Service{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api"}, v); err != nil {
			return false, err.Error()
		}
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: hostName}, h); err != nil {
			return false, err.Error()
		}
		return v.Spec.ClusterIP != "" && v.Spec.ClusterIP == h.Spec.ClusterIP,
			fmt.Sprintf("virtual %s, host %s", v.Spec.ClusterIP, h.Spec.ClusterIP)
	})
	testkit.Eventually(t, 30*time.Second, "both sides' endpoints hold the pod IPs", func() (bool, string) {
		v, h := sliceIPs(t, w.virtualC, ns, "api"), sliceIPs(t, w.hostC, hostNamespace, hostName)
		return slices.Equal(v, podIPs) && slices.Equal(h, podIPs),
			fmt.Sprintf("pods %v, virtual %v, host %v", podIPs, v, h)
	})
}

// A Service without a selector takes the tenant's own endpoints to the host,
// but never addresses inside the service range.
func TestServicesWithoutSelectorCarryTheirEndpoints(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "external")
	create(t, ctx, w.virtualC, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}},
	}, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"192.0.2.10"}},
			{Addresses: []string{strings.TrimSuffix(w.host.ServiceCIDR, "0/16") + "1"}}, // the host API's address
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("pg"), Port: ptr.To[int32](5432)}},
	})
	testkit.Eventually(t, 30*time.Second, "the host slice with the tenant's address only", func() (bool, string) {
		got := sliceIPs(t, w.hostC, hostNamespace, w.names.HostName(ns, "db"))
		return slices.Equal(got, []string{"192.0.2.10"}), fmt.Sprintf("host addresses %v", got)
	})
}

// When the virtual Service's address is taken on the host (kube-dns's
// well-known address is the common case), the host chooses, and the virtual
// Service is recreated with the host's address; nothing of the tenant's
// Service is lost.
func TestAServiceWhoseAddressIsTakenOnTheHostMoves(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "moving")
	other := unique("other-team")
	taken := strings.TrimSuffix(w.host.ServiceCIDR, "0/16") + strconv.Itoa(76+runs["other-team"]) // a new address each run
	create(t, ctx, w.hostC, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: other},
		Spec:       corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 53}}},
	})
	create(t, ctx, w.virtualC, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns, Labels: map[string]string{"keep": "me"}},
		Spec: corev1.ServiceSpec{ClusterIP: taken, Selector: map[string]string{"app": "dns"},
			Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}},
	})
	testkit.Eventually(t, 30*time.Second, "one shared address, not the taken one", func() (bool, string) {
		v, h := &corev1.Service{}, &corev1.Service{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "dns"}, v); err != nil {
			return false, err.Error()
		}
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "dns")}, h); err != nil {
			return false, err.Error()
		}
		return v.Spec.ClusterIP == h.Spec.ClusterIP && v.Spec.ClusterIP != taken && v.Labels["keep"] == "me",
			fmt.Sprintf("virtual %s, host %s", v.Spec.ClusterIP, h.Spec.ClusterIP)
	})
}

// unusedNodePorts returns n node ports that no Service on either plane
// holds, so the story can run again (-count) against the same planes.
func unusedNodePorts(t *testing.T, ctx context.Context, n int) []int32 {
	t.Helper()
	used := map[int32]bool{}
	for _, c := range []client.Client{w.hostC, w.virtualC} {
		var list corev1.ServiceList
		if err := c.List(ctx, &list); err != nil {
			t.Fatal(err)
		}
		for _, svc := range list.Items {
			used[svc.Spec.HealthCheckNodePort] = true
			for _, p := range svc.Spec.Ports {
				used[p.NodePort] = true
			}
		}
	}
	var free []int32
	for p := int32(30500); len(free) < n && p <= 32767; p++ {
		if !used[p] {
			free = append(free, p)
		}
	}
	if len(free) < n {
		t.Fatalf("fewer than %d free node ports", n)
	}
	return free
}

// With node ports and load balancers allowed, NodePort and LoadBalancer
// Services keep their type on the host; the host decides the node ports
// (here one the tenant asks for is taken on the host) and the virtual
// Service follows, and a load balancer's address flows back up.
func TestNodePortAndLoadBalancerServicesFollowTheirHostTwins(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "exposed")
	free := unusedNodePorts(t, ctx, 2)
	takenPort, laterPort := free[0], free[1]
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "holds-" + ns, Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "other"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: takenPort}}},
	}
	create(t, ctx, w.hostC, foreign)
	t.Cleanup(func() { _ = w.hostC.Delete(ctx, foreign) })
	create(t, ctx, w.virtualC,
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: ns},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "np"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: takenPort}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: ns},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "lb"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "local", Namespace: ns},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "local"},
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		})

	twins := func(name string) (v, h *corev1.Service, err error) {
		v, h = &corev1.Service{}, &corev1.Service{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, v); err != nil {
			return nil, nil, err
		}
		return v, h, w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, name)}, h)
	}
	testkit.Eventually(t, 30*time.Second, "a NodePort twin on a port the host chose, and the virtual Service on the same port", func() (bool, string) {
		v, h, err := twins("np")
		if err != nil {
			return false, err.Error()
		}
		hp, vp := h.Spec.Ports[0].NodePort, v.Spec.Ports[0].NodePort
		return h.Spec.Type == corev1.ServiceTypeNodePort && hp != 0 && hp != takenPort && vp == hp,
			fmt.Sprintf("host %s port %d, virtual port %d", h.Spec.Type, hp, vp)
	})
	testkit.Eventually(t, 30*time.Second, "a LoadBalancer twin with the virtual Service's node port", func() (bool, string) {
		v, h, err := twins("lb")
		if err != nil {
			return false, err.Error()
		}
		return h.Spec.Type == corev1.ServiceTypeLoadBalancer && h.Spec.Ports[0].NodePort == v.Spec.Ports[0].NodePort,
			fmt.Sprintf("host %s port %d, virtual port %d", h.Spec.Type, h.Spec.Ports[0].NodePort, v.Spec.Ports[0].NodePort)
	})

	// A load balancer that keeps traffic on its node: the host checks its
	// health on the node port the virtual Service shows.
	testkit.Eventually(t, 30*time.Second, "a Local LoadBalancer twin with the virtual Service's health check node port", func() (bool, string) {
		v, h, err := twins("local")
		if err != nil {
			return false, err.Error()
		}
		return h.Spec.HealthCheckNodePort != 0 && h.Spec.HealthCheckNodePort == v.Spec.HealthCheckNodePort,
			fmt.Sprintf("host health check node port %d, virtual %d", h.Spec.HealthCheckNodePort, v.Spec.HealthCheckNodePort)
	})

	// A tenant's later choice of node port is tried on the host: a free one
	// is taken, a taken one is refused and the virtual Service goes back.
	setPort := func(port int32) {
		t.Helper()
		v, _, err := twins("np")
		if err != nil {
			t.Fatal(err)
		}
		v.Spec.Ports[0].NodePort = port
		if err := w.virtualC.Update(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	setPort(laterPort)
	testkit.Eventually(t, 30*time.Second, "the host twin on the node port the tenant chose", func() (bool, string) {
		v, h, err := twins("np")
		if err != nil {
			return false, err.Error()
		}
		return h.Spec.Ports[0].NodePort == laterPort && v.Spec.Ports[0].NodePort == laterPort,
			fmt.Sprintf("host port %d, virtual port %d", h.Spec.Ports[0].NodePort, v.Spec.Ports[0].NodePort)
	})
	setPort(takenPort)
	testkit.Eventually(t, 30*time.Second, "a taken node port refused, the virtual Service back on the host's, and an event saying so", func() (bool, string) {
		v, h, err := twins("np")
		if err != nil {
			return false, err.Error()
		}
		var events corev1.EventList
		if err := w.virtualC.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		said := slices.ContainsFunc(events.Items, func(e corev1.Event) bool {
			return e.InvolvedObject.Name == "np" && e.Reason == "NodePortNotAvailable" && strings.Contains(e.Message, strconv.Itoa(int(takenPort)))
		})
		return h.Spec.Ports[0].NodePort == laterPort && v.Spec.Ports[0].NodePort == laterPort && said,
			fmt.Sprintf("host port %d, virtual port %d, event %v", h.Spec.Ports[0].NodePort, v.Spec.Ports[0].NodePort, said)
	})

	// There is no load-balancer controller here: write its status as a cloud
	// controller would.
	testkit.Eventually(t, 30*time.Second, "an address on the host twin's load balancer status", func() (bool, string) {
		_, h, err := twins("lb")
		if err != nil {
			return false, err.Error()
		}
		h.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.0.2.10"}}
		err = w.hostC.Status().Update(ctx, h) // a conflict is tried again
		return err == nil, fmt.Sprint(err)
	})
	testkit.Eventually(t, 30*time.Second, "the load balancer's address on the virtual Service", func() (bool, string) {
		v, _, err := twins("lb")
		if err != nil {
			return false, err.Error()
		}
		ing := v.Status.LoadBalancer.Ingress
		return len(ing) == 1 && ing[0].IP == "192.0.2.10", fmt.Sprintf("virtual ingress %v", ing)
	})
}

// The virtual API server's own "kubernetes" Service takes the address of
// the host Service that serves the virtual API, so what tenants see is what
// their pods reach (the range's first address is, on the host, the host's
// own API server).
func TestTheVirtualAPIServiceHasTheHostAPIServicesAddress(t *testing.T) {
	ctx := setup(t)
	api := &corev1.Service{}
	if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: clusterName}, api); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the virtual kubernetes Service on the host API Service's address", func() (bool, string) {
		v := &corev1.Service{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, v); err != nil {
			return false, err.Error()
		}
		return v.Spec.ClusterIP == api.Spec.ClusterIP, fmt.Sprintf("virtual %s, host API Service %s", v.Spec.ClusterIP, api.Spec.ClusterIP)
	})
}
