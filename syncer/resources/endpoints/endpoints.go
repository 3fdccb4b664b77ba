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
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
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

// Syncer reconciles one virtual EndpointSlice per request.
type Syncer struct {
	*syncer.Pair
}

// SetupWithManager registers the endpoint syncer.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	pods, err := s.indexAndWatchPods(mgr)
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("endpointslice").
		For(&discoveryv1.EndpointSlice{}).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(s.slicesOfService)).
		WatchesRawSource(s.WatchHost(&discoveryv1.EndpointSlice{}, Kind)).
		WatchesRawSource(pods).
		Complete(s)
}

// slicesOfService requeues a service's slices when its selector changes.
func (s *Syncer) slicesOfService(ctx context.Context, o client.Object) []reconcile.Request {
	var slices discoveryv1.EndpointSliceList
	if err := s.Virtual.List(ctx, &slices, client.InNamespace(o.GetNamespace()),
		client.MatchingLabels{discoveryv1.LabelServiceName: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(slices.Items))
	for _, sl := range slices.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: sl.Namespace, Name: sl.Name}})
	}
	return out
}

// Reconcile syncs one slice, or removes its host twin.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	v, h, found, foreign, err := syncer.Twins(ctx, s.Pair, Kind, req.NamespacedName, func() *discoveryv1.EndpointSlice { return &discoveryv1.EndpointSlice{} })
	if err != nil {
		return reconcile.Result{}, err
	}
	if foreign {
		return reconcile.Result{RequeueAfter: syncer.ConflictRetry}, nil
	}
	wanted, err := s.wanted(ctx, v)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !wanted {
		if !found {
			return reconcile.Result{}, nil
		}
		if v == nil {
			if gone, err := s.VirtualGone(ctx, req.NamespacedName, &discoveryv1.EndpointSlice{}); !gone {
				return syncer.Requeue(time.Second, err)
			}
		}
		return reconcile.Result{}, s.DeleteHost(ctx, Kind, h)
	}
	want, dropped, why, err := s.hostSlice(ctx, v)
	if err != nil {
		return reconcile.Result{}, err
	}
	if why != "" {
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonDropped, "Sync", "not synced to the host: %s", why)
		if found {
			return reconcile.Result{}, s.DeleteHost(ctx, Kind, h)
		}
		return reconcile.Result{}, nil
	}
	if !found {
		s.tellDropped(v, dropped)
		if err := s.CreateHost(ctx, Kind, v, want); err != nil && err != syncer.ErrConflict {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	next := h.DeepCopy()
	next.Labels, next.Annotations = want.Labels, want.Annotations
	next.Endpoints, next.Ports = want.Endpoints, want.Ports
	if equality.Semantic.DeepEqual(next, h) {
		return reconcile.Result{}, nil
	}
	s.tellDropped(v, dropped)
	if err := s.Host.Update(ctx, next); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return reconcile.Result{}, fmt.Errorf("updating host endpoint slice %s: %w", h.Name, err)
	}
	return reconcile.Result{}, nil
}

// wanted: the slice belongs to a synced Service without a selector.
func (s *Syncer) wanted(ctx context.Context, v *discoveryv1.EndpointSlice) (bool, error) {
	if v == nil || v.DeletionTimestamp != nil {
		return false, nil
	}
	name := v.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return false, nil
	}
	svc := &corev1.Service{}
	if err := s.Virtual.Get(ctx, types.NamespacedName{Namespace: v.Namespace, Name: name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, err
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
