// Package endpoints copies the EndpointSlices of virtual Services without a
// selector to the host, where the host's proxies need them. (Services with a
// selector get their endpoints on each side from that side's controllers:
// the host's from the host pods, the virtual's from the virtual pods, whose
// status carries the host pod IPs.)
//
// Addresses reach the host only when they are this cluster's own running
// pods or lie in --endpoint-cidrs: never the service range (no chaining
// into host Services), loopback, link-local, nodes or other tenants' pods.
// It never touches a host slice it did not create.
package endpoints

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// Kind is the origin kind of synced EndpointSlices.
const Kind = "EndpointSlice"

// managedBy tells the host's EndpointSlice controllers to leave our slices be.
const managedBy = "syncer.warren.dev"

// Syncer is the EndpointSlice kind.
type Syncer struct {
	syncer.Twin[*discoveryv1.EndpointSlice]
}

var (
	_ syncer.Syncer[*discoveryv1.EndpointSlice] = &Syncer{}
	_ syncer.Filter[*discoveryv1.EndpointSlice] = &Syncer{}
	_ syncer.Watcher                            = &Syncer{}
)

// New is the EndpointSlice controller. IndexAddresses must be registered
// first.
func New(p *syncer.Pair) *syncer.Reconciler[*discoveryv1.EndpointSlice] {
	return syncer.For(p, "endpointslice", Kind, &Syncer{Twin: syncer.Twin[*discoveryv1.EndpointSlice]{Pair: p, Kind: Kind}})
}

// Watch requeues a Service's slices when its selector changes, and every
// slice naming a host pod's address when that pod changes.
func (s *Syncer) Watch(b *builder.Builder) *builder.Builder {
	return b.Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(s.slicesOfService)).
		WatchesRawSource(s.watchPods())
}

// slicesOfService requeues a service's slices when its selector changes.
func (s *Syncer) slicesOfService(ctx context.Context, o client.Object) []reconcile.Request {
	var slices discoveryv1.EndpointSliceList
	if err := s.Virtual.List(ctx, &slices, client.InNamespace(o.GetNamespace()),
		client.MatchingLabels{discoveryv1.LabelServiceName: o.GetName()}); err != nil {
		return nil
	}
	return requests(slices.Items)
}

func requests(slices []discoveryv1.EndpointSlice) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(slices))
	for _, sl := range slices {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sl.Namespace, Name: sl.Name}})
	}
	return out
}

// SyncToHost creates the twin of an allowed slice.
func (s *Syncer) SyncToHost(ctx context.Context, v *discoveryv1.EndpointSlice) (reconcile.Result, error) {
	want, dropped, why, err := s.hostSlice(ctx, v)
	if err != nil || why != "" {
		return s.Refuse(ctx, ReasonDropped, v, nil, why, err)
	}
	s.tellDropped(v, dropped)
	return reconcile.Result{}, s.CreateHost(ctx, Kind, v, want)
}

// Sync brings the twin's addresses and ports in line, or removes it when
// the slice is no longer allowed.
func (s *Syncer) Sync(ctx context.Context, v, h *discoveryv1.EndpointSlice) (reconcile.Result, error) {
	want, dropped, why, err := s.hostSlice(ctx, v)
	if err != nil || why != "" {
		return s.Refuse(ctx, ReasonDropped, v, h, why, err)
	}
	next := h.DeepCopy()
	next.Labels, next.Annotations = want.Labels, want.Annotations
	next.Endpoints, next.Ports = want.Endpoints, want.Ports
	if equality.Semantic.DeepEqual(next, h) {
		return reconcile.Result{}, nil
	}
	s.tellDropped(v, dropped)
	return reconcile.Result{}, s.UpdateHost(ctx, Kind, next, h)
}

// Wanted: the slice belongs to a synced Service without a selector.
func (s *Syncer) Wanted(ctx context.Context, v *discoveryv1.EndpointSlice) (bool, error) {
	name := v.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return false, nil
	}
	svc := &corev1.Service{}
	if err := s.Virtual.Get(ctx, types.NamespacedName{Namespace: v.Namespace, Name: name}, svc); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return syncer.ServiceHasTwin(svc) && len(svc.Spec.Selector) == 0, nil
}

// hostSlice translates a virtual slice: its Service is the host twin of
// the virtual Service it names (checked against the twin's origin), and
// only allowed addresses pass (see allowed). why, when set, is the reason
// the slice does not reach the host.
func (s *Syncer) hostSlice(ctx context.Context, v *discoveryv1.EndpointSlice) (h *discoveryv1.EndpointSlice, dropped []string, why string, err error) {
	ref := syncer.Ref{Kind: "Service", Namespace: v.Namespace, Name: v.Labels[discoveryv1.LabelServiceName], Field: "metadata.labels[" + discoveryv1.LabelServiceName + "]"}
	service, err := s.HostRef(ctx, ref)
	if why := syncer.RefReason(err); why != "" {
		return nil, nil, why, nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	own, err := s.ownPodAddresses(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	h = &discoveryv1.EndpointSlice{AddressType: v.AddressType, Ports: v.Ports}
	h.Name = s.Names.HostName(v.Namespace, v.Name)
	h.Labels = map[string]string{discoveryv1.LabelServiceName: service, discoveryv1.LabelManagedBy: managedBy}
	h.Annotations = map[string]string{}
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	h.Endpoints, dropped = s.hostEndpoints(v, own)
	return h, dropped, "", nil
}

// tellDropped records which addresses did not reach the host.
func (s *Syncer) tellDropped(v *discoveryv1.EndpointSlice, dropped []string) {
	if len(dropped) > 0 {
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonDropped, "Sync",
			"addresses %s are not synced to the host: only this cluster's own running pods and --endpoint-cidrs may be endpoints", strings.Join(dropped, ", "))
	}
}
