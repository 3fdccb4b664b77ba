// Package services syncs virtual Services to the host so that both sides
// agree on one ClusterIP: the virtual API server runs with the host's service
// CIDR, the host twin is created first, and the virtual Service ends up with
// the twin's address (recreated if it had to change).
//
// NodePort and LoadBalancer Services keep their type on the host only when
// the syncer is told so (--sync-node-ports, --sync-load-balancers); their
// node ports follow the host twin's, as the ClusterIP does, and a load
// balancer's status flows back up. Otherwise they are served as ClusterIP,
// with a warning event.
//
// It never creates ExternalName or external-IP services on the host, never
// syncs the virtual API's own "kubernetes" Service, and never changes or
// deletes a host Service it did not create.
package services

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

	// aligned is, per virtual Service, the generation its node ports were
	// last aligned to the host's at: an older cached copy is stale and must
	// not be taken for a tenant's change.
	aligned sync.Map // types.NamespacedName → alignedAt
}

type alignedAt struct {
	uid        types.UID
	generation int64
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
		if v == nil {
			s.aligned.Delete(req.NamespacedName)
		}
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
	if a, ok := s.aligned.Load(req.NamespacedName); ok && a.(alignedAt).uid == v.UID && v.Generation < a.(alignedAt).generation {
		return reconcile.Result{RequeueAfter: time.Second}, nil // the cache has not seen the alignment yet
	}
	want := s.hostService(v)
	if !found {
		if ok, flag := s.allowed(v.Spec.Type); !ok {
			s.Events.Eventf(v, nil, corev1.EventTypeWarning, "ServiceTypeNotAvailable", "Sync",
				"type %s is served as ClusterIP: %s is off for this virtual cluster", v.Spec.Type, flag)
		}
		if err := s.createHost(ctx, v, want); err != nil {
			if err == clusters.ErrConflict {
				return reconcile.Result{RequeueAfter: clusters.ConflictRetry}, nil
			}
			return reconcile.Result{}, err
		}
		h = want
	} else if h, err = s.updateHost(ctx, v, want, h); err != nil {
		return reconcile.Result{}, err
	}
	if err := s.alignNodePorts(ctx, v, h); err != nil {
		return reconcile.Result{}, err
	}
	if err := s.loadBalancerStatus(ctx, v, h); err != nil {
		return reconcile.Result{}, err
	}
	return s.alignClusterIP(ctx, v, h)
}

// allowed reports whether the host may serve a Service type as it is, and
// otherwise which flag would allow it.
func (s *Syncer) allowed(t corev1.ServiceType) (ok bool, flag string) {
	switch t {
	case corev1.ServiceTypeNodePort:
		return s.Config.SyncNodePorts, "--sync-node-ports"
	case corev1.ServiceTypeLoadBalancer:
		return s.Config.SyncLoadBalancers, "--sync-load-balancers"
	}
	return true, ""
}

// exposed reports whether a Service type has node ports.
func exposed(t corev1.ServiceType) bool {
	return t == corev1.ServiceTypeNodePort || t == corev1.ServiceTypeLoadBalancer
}

// hostService translates a virtual Service.
func (s *Syncer) hostService(v *corev1.Service) *corev1.Service {
	h := &corev1.Service{}
	h.Name = s.Names.HostName(v.Namespace, v.Name)
	h.Namespace = s.Names.HostNamespace
	h.Labels = translate.HostLabels(v.Labels)
	h.Annotations = map[string]string{}
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	typ := corev1.ServiceTypeClusterIP
	if ok, _ := s.allowed(v.Spec.Type); ok && exposed(v.Spec.Type) {
		typ = v.Spec.Type
	}
	h.Spec = corev1.ServiceSpec{
		Type:                     typ,
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
	if exposed(typ) {
		h.Spec.ExternalTrafficPolicy = v.Spec.ExternalTrafficPolicy
	}
	if typ == corev1.ServiceTypeLoadBalancer {
		h.Spec.LoadBalancerSourceRanges = v.Spec.LoadBalancerSourceRanges
		h.Spec.LoadBalancerClass = v.Spec.LoadBalancerClass
		h.Spec.AllocateLoadBalancerNodePorts = v.Spec.AllocateLoadBalancerNodePorts
	}
	for _, p := range v.Spec.Ports {
		if !exposed(typ) {
			p.NodePort = 0
		}
		h.Spec.Ports = append(h.Spec.Ports, p)
	}
	return h
}

// createHost creates the twin with the virtual ClusterIP and node ports if
// the host has them free, and with ones the host chooses otherwise.
func (s *Syncer) createHost(ctx context.Context, v, h *corev1.Service) error {
	err := s.CreateHost(ctx, Kind, v, h)
	for range 2 {
		ip, port := taken(err)
		if !ip && !port {
			break
		}
		if ip {
			h.Spec.ClusterIP, h.Spec.ClusterIPs = "", nil
		}
		if port {
			for i := range h.Spec.Ports {
				h.Spec.Ports[i].NodePort = 0
			}
		}
		h.ResourceVersion = ""
		err = s.CreateHost(ctx, Kind, v, h)
	}
	return err
}

// taken reports whether the host refused an address (ip) or a node port
// (port) because it is already allocated.
func taken(err error) (ip, port bool) {
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "allocated") {
		return false, false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			if !strings.Contains(c.Message, "allocated") {
				continue
			}
			if strings.Contains(c.Field, "nodePort") {
				port = true
			} else {
				ip = true
			}
		}
	}
	if !ip && !port {
		ip = true
	}
	return ip, port
}

func ipTaken(err error) bool {
	ip, _ := taken(err)
	return ip
}

// updateHost carries over what may change on a Service and returns the
// host twin as it is now. A node port the host refuses stays as the host
// has it (the virtual Service follows), with a warning event.
func (s *Syncer) updateHost(ctx context.Context, v, want, h *corev1.Service) (*corev1.Service, error) {
	next := h.DeepCopy()
	next.Labels, next.Annotations = want.Labels, want.Annotations
	next.Spec.Type = want.Spec.Type
	next.Spec.Selector = want.Spec.Selector
	next.Spec.Ports = want.Spec.Ports
	next.Spec.SessionAffinity = want.Spec.SessionAffinity
	next.Spec.SessionAffinityConfig = want.Spec.SessionAffinityConfig
	next.Spec.PublishNotReadyAddresses = want.Spec.PublishNotReadyAddresses
	next.Spec.InternalTrafficPolicy = want.Spec.InternalTrafficPolicy
	next.Spec.TrafficDistribution = want.Spec.TrafficDistribution
	next.Spec.ExternalTrafficPolicy = want.Spec.ExternalTrafficPolicy
	next.Spec.LoadBalancerSourceRanges = want.Spec.LoadBalancerSourceRanges
	next.Spec.LoadBalancerClass = want.Spec.LoadBalancerClass
	next.Spec.AllocateLoadBalancerNodePorts = want.Spec.AllocateLoadBalancerNodePorts
	if !exposed(want.Spec.Type) {
		next.Spec.HealthCheckNodePort = 0
	}
	if equality.Semantic.DeepEqual(next, h) {
		return h, nil
	}
	patched := next.DeepCopy()
	err := s.Host.Patch(ctx, patched, client.MergeFrom(h))
	if _, port := taken(err); port {
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, "NodePortNotAvailable", "Sync",
			"a node port asked for is taken on the host; the Service keeps the ports the host gave it")
		for i := range next.Spec.Ports {
			next.Spec.Ports[i].NodePort = hostNodePort(h, next.Spec.Ports[i])
		}
		patched = next.DeepCopy()
		err = s.Host.Patch(ctx, patched, client.MergeFrom(h))
	}
	switch {
	case apierrors.IsNotFound(err):
		return h, nil
	case err != nil:
		return nil, fmt.Errorf("updating host service %s: %w", h.Name, err)
	}
	return patched, nil
}

// hostNodePort is the node port the host twin has for a port (0: none).
func hostNodePort(h *corev1.Service, p corev1.ServicePort) int32 {
	for _, hp := range h.Spec.Ports {
		if hp.Port == p.Port && hp.Protocol == p.Protocol {
			return hp.NodePort
		}
	}
	return 0
}

// alignNodePorts gives the virtual Service its host twin's node ports (node
// ports are mutable: an update, not a recreate).
func (s *Syncer) alignNodePorts(ctx context.Context, v, h *corev1.Service) error {
	if !exposed(h.Spec.Type) || h.Spec.Type != v.Spec.Type {
		return nil
	}
	next := v.DeepCopy()
	for i := range next.Spec.Ports {
		if np := hostNodePort(h, next.Spec.Ports[i]); np != 0 {
			next.Spec.Ports[i].NodePort = np
		}
	}
	if equality.Semantic.DeepEqual(next.Spec.Ports, v.Spec.Ports) {
		return nil
	}
	if err := s.Virtual.Patch(ctx, next, client.MergeFrom(v)); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // the next event brings the Service back here
		}
		return fmt.Errorf("giving virtual service %s/%s the host's node ports: %w", v.Namespace, v.Name, err)
	}
	s.aligned.Store(types.NamespacedName{Namespace: v.Namespace, Name: v.Name}, alignedAt{uid: v.UID, generation: next.Generation})
	return nil
}

// loadBalancerStatus copies the host twin's load balancer up.
func (s *Syncer) loadBalancerStatus(ctx context.Context, v, h *corev1.Service) error {
	want := corev1.LoadBalancerStatus{}
	if h.Spec.Type == corev1.ServiceTypeLoadBalancer && v.Spec.Type == corev1.ServiceTypeLoadBalancer {
		want = *h.Status.LoadBalancer.DeepCopy()
	}
	if equality.Semantic.DeepEqual(want, v.Status.LoadBalancer) {
		return nil
	}
	next := v.DeepCopy()
	next.Status.LoadBalancer = want
	if err := s.Virtual.Status().Patch(ctx, next, client.MergeFrom(v)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating virtual service %s/%s load balancer status: %w", v.Namespace, v.Name, err)
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
