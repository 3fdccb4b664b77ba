// Package services syncs virtual Services to the host so that both sides
// agree on one ClusterIP: the virtual API server runs with the host's service
// CIDR, the host twin is created first, and the virtual Service ends up with
// the twin's address (recreated if it had to change).
//
// It never creates NodePort, LoadBalancer, ExternalName or external-IP
// services on the host, never syncs the virtual API's own "kubernetes"
// Service, and never changes or deletes a host Service it did not create.
package services

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer/clusters"
	"github.com/warren-dev/warren/syncer/translate"
)

// Kind is the origin kind of synced Services.
const Kind = "Service"

// Syncer reconciles one virtual Service per request.
type Syncer struct {
	*clusters.Pair
}

// SetupWithManager registers the service syncer.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		WatchesRawSource(s.WatchHost(&corev1.Service{}, Kind)).
		Complete(s)
}

// Synced reports whether a virtual Service has a host twin at all.
func Synced(v *corev1.Service) bool {
	if v.Namespace == "default" && v.Name == "kubernetes" {
		return false // the virtual API; pods reach it through the API Service
	}
	return v.Spec.Type != corev1.ServiceTypeExternalName // resolved by the virtual DNS alone
}

// Reconcile brings the host twin in line and aligns the ClusterIPs.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	v, h, found, foreign, err := clusters.Twins(ctx, s.Pair, Kind, req.NamespacedName, func() *corev1.Service { return &corev1.Service{} })
	if err != nil {
		return reconcile.Result{}, err
	}
	if foreign {
		return reconcile.Result{RequeueAfter: clusters.ConflictRetry}, nil
	}
	if v == nil || v.DeletionTimestamp != nil || !Synced(v) {
		if !found {
			return reconcile.Result{}, nil
		}
		if v == nil {
			if gone, err := s.VirtualGone(ctx, req.NamespacedName, &corev1.Service{}); !gone {
				return clusters.Requeue(time.Second, err)
			}
		}
		return reconcile.Result{}, s.DeleteHost(ctx, Kind, h)
	}
	want := s.hostService(v)
	if !found {
		if v.Spec.Type == corev1.ServiceTypeNodePort || v.Spec.Type == corev1.ServiceTypeLoadBalancer {
			s.Events.Eventf(v, nil, corev1.EventTypeWarning, "ServiceTypeNotAvailable", "Sync",
				"type %s is served as ClusterIP: this virtual cluster does not expose node ports or load balancers", v.Spec.Type)
		}
		if err := s.createHost(ctx, v, want); err != nil {
			if err == clusters.ErrConflict {
				return reconcile.Result{RequeueAfter: clusters.ConflictRetry}, nil
			}
			return reconcile.Result{}, err
		}
		h = want
	} else if err := s.updateHost(ctx, want, h); err != nil {
		return reconcile.Result{}, err
	}
	return s.alignClusterIP(ctx, v, h)
}

// hostService translates a virtual Service.
func (s *Syncer) hostService(v *corev1.Service) *corev1.Service {
	h := &corev1.Service{}
	h.Name = s.Names.HostName(v.Namespace, v.Name)
	h.Namespace = s.Names.HostNamespace
	h.Labels = translate.HostLabels(v.Labels)
	h.Annotations = map[string]string{}
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	h.Spec = corev1.ServiceSpec{
		Type:                     corev1.ServiceTypeClusterIP,
		Selector:                 s.Names.HostSelector(v.Namespace, v.Spec.Selector),
		ClusterIP:                v.Spec.ClusterIP,
		SessionAffinity:          v.Spec.SessionAffinity,
		SessionAffinityConfig:    v.Spec.SessionAffinityConfig,
		PublishNotReadyAddresses: v.Spec.PublishNotReadyAddresses,
		IPFamilies:               v.Spec.IPFamilies,
		IPFamilyPolicy:           v.Spec.IPFamilyPolicy,
		InternalTrafficPolicy:    v.Spec.InternalTrafficPolicy,
		TrafficDistribution:      v.Spec.TrafficDistribution,
	}
	if v.Spec.ClusterIP != "" {
		h.Spec.ClusterIPs = []string{v.Spec.ClusterIP}
	}
	for _, p := range v.Spec.Ports {
		p.NodePort = 0
		h.Spec.Ports = append(h.Spec.Ports, p)
	}
	return h
}

// createHost creates the twin with the virtual ClusterIP if the host has it
// free, and with one the host chooses otherwise.
func (s *Syncer) createHost(ctx context.Context, v, h *corev1.Service) error {
	err := s.CreateHost(ctx, Kind, v, h)
	if err != nil && ipTaken(err) {
		h.Spec.ClusterIP, h.Spec.ClusterIPs = "", nil
		h.ResourceVersion = ""
		err = s.CreateHost(ctx, Kind, v, h)
	}
	return err
}

func ipTaken(err error) bool {
	return apierrors.IsInvalid(err) && strings.Contains(err.Error(), "allocated")
}

// updateHost carries over what may change on a Service.
func (s *Syncer) updateHost(ctx context.Context, want, h *corev1.Service) error {
	next := h.DeepCopy()
	next.Labels, next.Annotations = want.Labels, want.Annotations
	next.Spec.Selector = want.Spec.Selector
	next.Spec.Ports = want.Spec.Ports
	next.Spec.SessionAffinity = want.Spec.SessionAffinity
	next.Spec.SessionAffinityConfig = want.Spec.SessionAffinityConfig
	next.Spec.PublishNotReadyAddresses = want.Spec.PublishNotReadyAddresses
	next.Spec.InternalTrafficPolicy = want.Spec.InternalTrafficPolicy
	next.Spec.TrafficDistribution = want.Spec.TrafficDistribution
	if equality.Semantic.DeepEqual(next, h) {
		return nil
	}
	if err := s.Host.Patch(ctx, next, client.MergeFrom(h)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating host service %s: %w", h.Name, err)
	}
	return nil
}

// alignClusterIP gives the virtual Service its twin's ClusterIP. A ClusterIP
// is immutable, so the virtual Service is recreated with the same metadata
// and spec. If the virtual API has that address in use elsewhere, the twin
// moves instead, to an address the virtual side holds.
func (s *Syncer) alignClusterIP(ctx context.Context, v, h *corev1.Service) (reconcile.Result, error) {
	hostIP, virtualIP := h.Spec.ClusterIP, v.Spec.ClusterIP
	if hostIP == virtualIP || hostIP == "" || hostIP == corev1.ClusterIPNone || virtualIP == corev1.ClusterIPNone {
		return reconcile.Result{}, nil
	}
	key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
	uid := v.UID
	if err := s.Virtual.Delete(ctx, v, client.Preconditions{UID: &uid}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("replacing virtual service %s to take ClusterIP %s: %w", key, hostIP, err)
	}
	next := &corev1.Service{ObjectMeta: *v.ObjectMeta.DeepCopy(), Spec: *v.Spec.DeepCopy()}
	next.ResourceVersion, next.UID, next.CreationTimestamp, next.ManagedFields = "", "", v.CreationTimestamp, nil
	next.Spec.ClusterIP, next.Spec.ClusterIPs = hostIP, []string{hostIP}
	err := s.Virtual.Create(ctx, next)
	if err != nil && ipTaken(err) {
		// Never lose the tenant's Service: take any address, and let the next
		// round move the host twin to it.
		next.Spec.ClusterIP, next.Spec.ClusterIPs = "", nil
		err = s.Virtual.Create(ctx, next)
		if err == nil {
			return clusters.Requeue(time.Second, s.DeleteHost(ctx, Kind, h))
		}
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("recreating virtual service %s with ClusterIP %s: %w", key, hostIP, err)
	}
	return reconcile.Result{}, nil
}
