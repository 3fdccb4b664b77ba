package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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
	eventually(t, 60*time.Second, "2 virtual pods Running with IPs", func() (bool, string) {
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
	eventually(t, 30*time.Second, "the same ClusterIP on both sides", func() (bool, string) {
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
	eventually(t, 30*time.Second, "both sides' endpoints hold the pod IPs", func() (bool, string) {
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
	eventually(t, 30*time.Second, "the host slice with the tenant's address only", func() (bool, string) {
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
	taken := strings.TrimSuffix(w.host.ServiceCIDR, "0/16") + "77"
	create(t, ctx, w.hostC, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other-team"}}, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "other-team"},
		Spec:       corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 53}}},
	})
	create(t, ctx, w.virtualC, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: ns, Labels: map[string]string{"keep": "me"}},
		Spec: corev1.ServiceSpec{ClusterIP: taken, Selector: map[string]string{"app": "dns"},
			Ports: []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}},
	})
	eventually(t, 30*time.Second, "one shared address, not the taken one", func() (bool, string) {
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
