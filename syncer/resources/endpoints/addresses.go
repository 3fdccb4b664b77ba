package endpoints

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// ReasonDropped is the event on a virtual slice some of whose addresses did
// not reach the host.
const ReasonDropped = "EndpointsNotAllowed"

// addressIndex indexes virtual slices by their endpoint addresses, so a
// host pod that goes away (and may leave its address to another tenant's
// pod) takes itself out of every slice that named it.
const addressIndex = "warren.dev/endpoint-addresses"

// ownPods is this cluster's running host pods by address, with their nodes.
type ownPods map[netip.Addr]string

// ownPodAddresses lists the addresses of this cluster's host pods that are
// not finished (a finished pod's address may be given to anyone's pod) and
// not on the host network (their address is the node's).
func (s *Syncer) ownPodAddresses(ctx context.Context) (ownPods, error) {
	var pods corev1.PodList
	if err := s.Host.List(ctx, &pods, client.InNamespace(s.Names.HostNamespace), client.MatchingLabels(s.Names.ManagedSelector()), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing this cluster's host pods: %w", err)
	}
	out := ownPods{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if _, ok := s.Names.OriginOf(p); !ok || p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, ip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				out[a.Unmap()] = p.Spec.NodeName
			}
		}
	}
	return out, nil
}

// allowed decides one endpoint address: this cluster's own pods, or a
// range the platform allows (--endpoint-cidrs). Never the service range
// (the host's Services), loopback, link-local or multicast, whatever the
// ranges say; everything else (other tenants' pods, nodes) is dropped.
// node is the host node of an own pod's address.
func (s *Syncer) allowed(addr string, own ownPods, serviceCIDR netip.Prefix) (ok bool, node string) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false, ""
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() ||
		(serviceCIDR.IsValid() && serviceCIDR.Contains(ip)) {
		return false, ""
	}
	if node, ok := own[ip]; ok {
		return true, node
	}
	for _, p := range s.Config.Workloads.EndpointCIDRs {
		if p.Contains(ip) {
			return true, ""
		}
	}
	return false, ""
}

// hostEndpoints filters and translates a virtual slice's endpoints, and
// says which addresses were dropped.
func (s *Syncer) hostEndpoints(v *discoveryv1.EndpointSlice, own ownPods) (out []discoveryv1.Endpoint, dropped []string) {
	cidr, _ := netip.ParsePrefix(s.Config.ServiceCIDR)
	for _, e := range v.Endpoints {
		var addrs []string
		var node string
		for _, a := range e.Addresses {
			ok, n := s.allowed(a, own, cidr)
			if !ok {
				dropped = append(dropped, a)
				continue
			}
			addrs = append(addrs, a)
			node = n
		}
		if len(addrs) == 0 {
			continue
		}
		e.Addresses = addrs
		e.TargetRef = nil
		// The node kube-proxy treats an endpoint as local on is the one its
		// pod runs on, never the tenant's word.
		e.NodeName = nil
		if node != "" {
			e.NodeName = &node
		}
		out = append(out, e)
	}
	return out, dropped
}

// IndexAddresses registers the index of virtual slices by address that
// the endpoint controller's watch on host pods reads.
func IndexAddresses(ctx context.Context, mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(ctx, &discoveryv1.EndpointSlice{}, addressIndex, func(o client.Object) []string {
		var out []string
		for _, e := range o.(*discoveryv1.EndpointSlice).Endpoints {
			out = append(out, e.Addresses...)
		}
		return out
	})
	if err != nil {
		return fmt.Errorf("indexing endpoint slices by address: %w", err)
	}
	return nil
}

// watchPods watches this cluster's host pods and requeues every slice
// naming a pod's address.
func (s *Syncer) watchPods() source.Source {
	return source.Kind(s.HostCluster.GetCache(), client.Object(&corev1.Pod{}), handler.EnqueueRequestsFromMapFunc(
		func(ctx context.Context, o client.Object) []reconcile.Request {
			var out []reconcile.Request
			for _, ip := range o.(*corev1.Pod).Status.PodIPs {
				var slices discoveryv1.EndpointSliceList
				if err := s.Virtual.List(ctx, &slices, client.MatchingFields{addressIndex: ip.IP}); err != nil {
					continue
				}
				out = append(out, requests(slices.Items)...)
			}
			return out
		}))
}
