package endpoints

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestSelectorlessServicesSlicesGoDown(t *testing.T) {
	service := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop", UID: "u-db"}}
	selected := service.DeepCopy()
	selected.Spec.Selector = map[string]string{"app": "db"}
	hostService := synctest.Twin("Service", service, &corev1.Service{})
	slice := func(addrs ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "shop", UID: "u-slice", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("sql"), Port: ptr.To(int32(5432))}},
		}
		for _, a := range addrs {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}, NodeName: ptr.To("tenant-says")})
		}
		return s
	}
	v := slice("192.0.2.10", "10.96.0.1")
	twin := func(v *discoveryv1.EndpointSlice, addrs ...string) *discoveryv1.EndpointSlice {
		h := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
				discoveryv1.LabelServiceName: hostService.Name, discoveryv1.LabelManagedBy: managedBy}},
			AddressType: v.AddressType, Ports: v.Ports,
		}
		for _, a := range addrs {
			h.Endpoints = append(h.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
		}
		h = synctest.Twin(Kind, v, h)
		h.Labels = map[string]string{discoveryv1.LabelServiceName: hostService.Name, discoveryv1.LabelManagedBy: managedBy,
			v1alpha1.ClusterLabel: synctest.Cluster, v1alpha1.SyncerNamespaceLabel: "shop", v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}
		return h
	}
	moved := slice("192.0.2.11")
	stolen := synctest.Foreign(service, &corev1.Service{})
	policy := config.Config{ServiceCIDR: "10.96.0.0/16", Workloads: config.Workloads{EndpointCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	key := types.NamespacedName{Namespace: "shop", Name: "db-1"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name: "allowed addresses go down, the service range stays behind and the tenant is told", Config: policy,
		InitialVirtual: []client.Object{service, v}, InitialHost: []client.Object{hostService}, Request: key,
		ExpectedVirtual: []client.Object{service, v},
		ExpectedHost:    []client.Object{hostService, twin(v, "192.0.2.10")},
		Events:          []string{ReasonDropped, "10.96.0.1"},
	}, {
		Name: "a changed address reaches the twin", Config: policy,
		InitialVirtual: []client.Object{service, moved}, InitialHost: []client.Object{hostService, twin(v, "192.0.2.10")}, Request: key,
		ExpectedVirtual: []client.Object{service, moved},
		ExpectedHost:    []client.Object{hostService, twin(moved, "192.0.2.11")},
	}, {
		Name: "a Service that gains a selector takes its slices' twins away", Config: policy,
		InitialVirtual: []client.Object{selected, v}, InitialHost: []client.Object{hostService, twin(v, "192.0.2.10")}, Request: key,
		ExpectedVirtual: []client.Object{selected, v},
		ExpectedHost:    []client.Object{hostService},
	}, {
		Name: "a slice whose Service's host name is held by a foreign Service is refused", Config: policy,
		InitialVirtual: []client.Object{service, v}, InitialHost: []client.Object{stolen}, Request: key,
		ExpectedVirtual: []client.Object{service, v},
		ExpectedHost:    []client.Object{stolen},
		Events:          []string{ReasonDropped, "not the copy of Service shop/db"},
	}, {
		Name: "a deleted slice takes its twin", Config: policy,
		InitialVirtual: []client.Object{service}, InitialHost: []client.Object{hostService, twin(v, "192.0.2.10")}, Request: key,
		ExpectedVirtual: []client.Object{service},
		ExpectedHost:    []client.Object{hostService},
	}})
}
