// Package services syncs virtual Services to the host so that both sides
// agree on one ClusterIP: the virtual API server runs with the host's service
// CIDR, the host twin is created first, and the virtual Service ends up with
// the twin's address (recreated if it had to change).
//
// NodePort and LoadBalancer Services keep their type on the host only when
// the syncer is told so (--sync-node-ports, --sync-load-balancers); their
// node ports follow the host twin's, as the ClusterIP does (a node port the
// tenant chooses later is tried on the host, and goes back to the host's,
// with a warning event, if the host refuses it), and a load balancer's
// status flows back up. Otherwise they are served as ClusterIP, with a
// warning event naming the flag that is off. The host twin asks for the
// virtual Service's health check node port; as that port cannot change once
// set, a host that chooses another says so in a warning event.
//
// It never creates ExternalName or external-IP services on the host, never
// syncs the virtual API's own "kubernetes" Service, and never changes or
// deletes a host Service it did not create.
package services

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// Kind is the origin kind of synced Services.
const Kind = "Service"

// Syncer is the Service kind.
type Syncer struct {
	syncer.Twin[*corev1.Service]

	// lastType is, per virtual Service, the type it had when last
	// reconciled, so that a change to a type the host does not serve is
	// told to the tenant as a create is.
	lastType sync.Map // types.NamespacedName → seenType
}

var (
	_ syncer.Syncer[*corev1.Service]    = &Syncer{}
	_ syncer.Filter[*corev1.Service]    = &Syncer{}
	_ syncer.Refresher[*corev1.Service] = &Syncer{}
	_ syncer.Forgetter                  = &Syncer{}
)

type seenType struct {
	uid types.UID
	typ corev1.ServiceType
}

// nodePortRetry is how soon a virtual Service that refused its host twin's
// node ports is tried again (another Service may be moving off them).
const nodePortRetry = 10 * time.Second

// New is the Service controller.
func New(p *syncer.Pair) *syncer.Reconciler[*corev1.Service] {
	return syncer.For(p, "service", Kind, &Syncer{Twin: syncer.Twin[*corev1.Service]{Pair: p, Kind: Kind}})
}

// Wanted: every Service with a twin, and the virtual API's own Service,
// which takes the address of the host Service that serves that API.
func (s *Syncer) Wanted(_ context.Context, v *corev1.Service) (bool, error) {
	return syncer.IsVirtualAPIService(v) || syncer.ServiceHasTwin(v), nil
}

// Stale: node ports that differ from the twin's are either the tenant's
// choice, or a cache that has not yet seen the virtual Service take the
// host's: only a live read tells, and a stale copy must never be pushed to
// the host.
func (s *Syncer) Stale(v, h *corev1.Service) bool { return nodePortsDiffer(v, h) }

// Forget drops what is remembered of a Service without a twin.
func (s *Syncer) Forget(key types.NamespacedName) { s.lastType.Delete(key) }

// SyncToHost creates the twin and aligns the ClusterIPs.
func (s *Syncer) SyncToHost(ctx context.Context, v *corev1.Service) (reconcile.Result, error) {
	return s.sync(ctx, v, nil)
}

// Sync brings the twin in line and aligns the ClusterIPs.
func (s *Syncer) Sync(ctx context.Context, v, h *corev1.Service) (reconcile.Result, error) {
	return s.sync(ctx, v, h)
}

// sync brings the twin h (nil: none yet) in line with v, and v's node
// ports, load balancer status and ClusterIP in line with the twin's.
func (s *Syncer) sync(ctx context.Context, v, h *corev1.Service) (reconcile.Result, error) {
	if syncer.IsVirtualAPIService(v) {
		return s.alignAPIService(ctx, v)
	}
	key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
	prev, seen := s.lastType.Swap(key, seenType{uid: v.UID, typ: v.Spec.Type})
	changed := seen && prev.(seenType).uid == v.UID && prev.(seenType).typ != v.Spec.Type
	if ok, flag := s.allowed(v.Spec.Type); !ok && (h == nil || changed) {
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, "ServiceTypeNotAvailable", "Sync",
			"type %s is served as ClusterIP: %s is off for this virtual cluster", v.Spec.Type, flag)
	}
	want := s.hostService(v)
	var err error
	if h == nil {
		if err := s.createHost(ctx, v, want); err != nil {
			return reconcile.Result{}, err
		}
		h = want
	} else if h, err = s.updateHost(ctx, v, want, h); err != nil {
		return reconcile.Result{}, err
	}
	v, retry, err := s.alignNodePorts(ctx, v, h)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := s.loadBalancerStatus(ctx, v, h); err != nil {
		return reconcile.Result{}, err
	}
	res, err := s.alignClusterIP(ctx, v, h)
	if retry && err == nil && res.RequeueAfter == 0 {
		res.RequeueAfter = nodePortRetry
	}
	return res, err
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
		if needsHealthCheck(h) {
			h.Spec.HealthCheckNodePort = v.Spec.HealthCheckNodePort
		}
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
//
// The host allocates the address, then the node ports, then the health
// check node port, and reports only the first it refuses: three retries
// at most.
func (s *Syncer) createHost(ctx context.Context, v, h *corev1.Service) error {
	err := s.CreateHost(ctx, Kind, v, h)
	for range 3 {
		ip, ports := taken(err)
		health := healthCheckTaken(err) && h.Spec.HealthCheckNodePort != 0
		if !ip && len(ports) == 0 && !health {
			break
		}
		if ip {
			h.Spec.ClusterIP, h.Spec.ClusterIPs = "", nil
		}
		for i := range ports {
			if i < len(h.Spec.Ports) {
				h.Spec.Ports[i].NodePort = 0
			}
		}
		if health {
			h.Spec.HealthCheckNodePort = 0
		}
		h.ResourceVersion = ""
		err = s.CreateHost(ctx, Kind, v, h)
		if health && err == nil {
			s.healthCheckMoved(v, h)
		}
	}
	return err
}

// healthCheckMoved tells the tenant that the host checks the Service's
// health on a port other than the one the virtual Service shows, which
// cannot change once set.
func (s *Syncer) healthCheckMoved(v, h *corev1.Service) {
	s.Events.Eventf(v, nil, corev1.EventTypeWarning, "HealthCheckNodePortNotAligned", "Sync",
		"health check node port %d is not available on the host; the host checks this Service's health on node port %d (a health check node port cannot change once set)",
		v.Spec.HealthCheckNodePort, h.Spec.HealthCheckNodePort)
}

// needsHealthCheck reports whether a Service has a health check node port:
// a LoadBalancer that keeps traffic on the node it arrives at.
func needsHealthCheck(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// healthCheckTaken reports whether the host refused the health check node
// port it was asked for. The API server reports that as an internal error,
// not a field error.
func healthCheckTaken(err error) bool {
	return apierrors.IsInternalError(err) && strings.Contains(err.Error(), "HealthCheck NodePort")
}

// taken reports what the host refused of a Service it was asked to create
// or change: an address already in use (ip), and the node ports it does not
// give (already allocated, or outside its node port range), by index in
// spec.ports, with the host's reason.
func taken(err error) (ip bool, ports map[int]string) {
	if err == nil || !apierrors.IsInvalid(err) {
		return false, nil
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil && len(status.Status().Details.Causes) > 0 {
		for _, c := range status.Status().Details.Causes {
			refused := strings.Contains(c.Message, "allocated") || strings.Contains(c.Message, "valid range")
			var i int
			_, scanErr := fmt.Sscanf(c.Field, "spec.ports[%d].nodePort", &i)
			switch {
			case !refused:
			case scanErr == nil && c.Field == fmt.Sprintf("spec.ports[%d].nodePort", i):
				if ports == nil {
					ports = map[int]string{}
				}
				ports[i] = reason(c.Message)
			case strings.HasPrefix(c.Field, "spec.clusterIP"):
				ip = true
			}
		}
		return ip, ports
	}
	return strings.Contains(err.Error(), "allocated"), nil // no details: an address, as before node ports
}

// reason is a field error's message without its "Invalid value: x: " part.
func reason(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

func ipTaken(err error) bool {
	ip, _ := taken(err)
	return ip
}

// updateHost carries over what may change on a Service and returns the
// host twin as it is now. A node port the host refuses stays as the host
// has it (the virtual Service follows), with a warning event that says which
// and why.
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
	switch {
	case !needsHealthCheck(next):
		next.Spec.HealthCheckNodePort = 0
	case !needsHealthCheck(h):
		// Becoming one: ask for the virtual Service's. Once set, a health
		// check node port cannot change.
		next.Spec.HealthCheckNodePort = want.Spec.HealthCheckNodePort
	}
	if equality.Semantic.DeepEqual(next, h) {
		return h, nil
	}
	patched := next.DeepCopy()
	err := s.Host.Patch(ctx, patched, client.MergeFrom(h))
	if healthCheckTaken(err) && next.Spec.HealthCheckNodePort != 0 {
		next.Spec.HealthCheckNodePort = 0 // the host chooses
		patched = next.DeepCopy()
		if err = s.Host.Patch(ctx, patched, client.MergeFrom(h)); err == nil {
			s.healthCheckMoved(v, patched)
		}
	}
	if _, refused := taken(err); len(refused) > 0 {
		asked := map[int]int32{}
		for i := range refused {
			if i < len(next.Spec.Ports) {
				asked[i] = next.Spec.Ports[i].NodePort
				next.Spec.Ports[i].NodePort = hostNodePort(h, next.Spec.Ports[i]) // 0: the host chooses
			}
		}
		patched = next.DeepCopy()
		if err = s.Host.Patch(ctx, patched, client.MergeFrom(h)); err == nil {
			var said []string
			for i, p := range patched.Spec.Ports {
				if np, ok := asked[i]; ok {
					said = append(said, fmt.Sprintf("node port %d of port %s is not available on the host (%s); it stays %d",
						np, portName(p), refused[i], p.NodePort))
				}
			}
			s.Events.Eventf(v, nil, corev1.EventTypeWarning, "NodePortNotAvailable", "Sync", "%s", strings.Join(said, "; "))
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		return h, nil
	case err != nil:
		return nil, fmt.Errorf("updating host service %s: %w", h.Name, err)
	}
	return patched, nil
}

// portName names a Service port for the tenant.
func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprintf("%d/%s", p.Port, p.Protocol)
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

// nodePortsDiffer reports whether a virtual Service and its host twin, of
// the same type with node ports, disagree on any node port.
func nodePortsDiffer(v, h *corev1.Service) bool {
	if v == nil || !exposed(h.Spec.Type) || v.Spec.Type != h.Spec.Type {
		return false
	}
	for _, p := range v.Spec.Ports {
		if p.NodePort != hostNodePort(h, p) {
			return true
		}
	}
	return false
}

// alignNodePorts gives the virtual Service its host twin's node ports (node
// ports are mutable: an update, not a recreate) and returns it as it is now.
// If the virtual API refuses a port (another virtual Service holds it, or it
// is outside the virtual cluster's range) the tenant is told, and retry says
// to come back.
func (s *Syncer) alignNodePorts(ctx context.Context, v, h *corev1.Service) (_ *corev1.Service, retry bool, _ error) {
	if !exposed(h.Spec.Type) || h.Spec.Type != v.Spec.Type {
		return v, false, nil
	}
	next := v.DeepCopy()
	for i := range next.Spec.Ports {
		if np := hostNodePort(h, next.Spec.Ports[i]); np != 0 {
			next.Spec.Ports[i].NodePort = np
		}
	}
	if equality.Semantic.DeepEqual(next.Spec.Ports, v.Spec.Ports) {
		return v, false, nil
	}
	// Locked to the version read, so a tenant's change made meanwhile is
	// tried on the host first rather than overwritten.
	err := s.Virtual.Patch(ctx, next, client.MergeFromWithOptions(v, client.MergeFromWithOptimisticLock{}))
	switch {
	case err == nil:
		return next, false, nil
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return v, false, nil // the next event brings the Service back here
	case apierrors.IsInvalid(err):
		var said []string
		for _, p := range next.Spec.Ports {
			if p.NodePort != 0 {
				said = append(said, fmt.Sprintf("%d (port %s)", p.NodePort, portName(p)))
			}
		}
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, "NodePortNotAligned", "Sync",
			"the host serves this Service on node ports %s, which this virtual cluster refuses (%s); trying again",
			strings.Join(said, ", "), reasons(err))
		return v, true, nil
	}
	return v, false, fmt.Errorf("giving virtual service %s/%s the host's node ports: %w", v.Namespace, v.Name, err)
}

// reasons are an API error's field reasons, or its message.
func reasons(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil && len(status.Status().Details.Causes) > 0 {
		var out []string
		for _, c := range status.Status().Details.Causes {
			out = append(out, reason(c.Message))
		}
		return strings.Join(out, "; ")
	}
	return err.Error()
}

// loadBalancerStatus copies the host twin's load balancer up.
func (s *Syncer) loadBalancerStatus(ctx context.Context, v, h *corev1.Service) error {
	want := corev1.LoadBalancerStatus{}
	if h.Spec.Type == corev1.ServiceTypeLoadBalancer && v.Spec.Type == corev1.ServiceTypeLoadBalancer {
		want = *h.Status.LoadBalancer.DeepCopy()
	}
	next := v.DeepCopy()
	next.Status.LoadBalancer = want
	return s.PatchVirtualStatus(ctx, next, v)
}

// alignAPIService gives the virtual "kubernetes" Service the address of the
// host Service that serves the virtual API (--service-name), so the address
// tenants see for their API server is one their pods reach; the virtual API
// server's own first address of the range is, on the host, the host's API
// server. The virtual API server only creates that Service when it is
// missing, so the recreated one keeps the new address. If the virtual side
// has that address in use, the Service keeps its own and the syncer tries
// again later.
func (s *Syncer) alignAPIService(ctx context.Context, v *corev1.Service) (reconcile.Result, error) {
	api := &corev1.Service{}
	err := s.HostReader.Get(ctx, types.NamespacedName{Namespace: s.Names.HostNamespace, Name: s.Config.ServiceName}, api)
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("reading the host Service %s that serves the virtual API: %w", s.Config.ServiceName, err)
	}
	ip := api.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone || ip == v.Spec.ClusterIP {
		return reconcile.Result{}, nil
	}
	var all corev1.ServiceList
	if err := s.Virtual.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing virtual services: %w", err)
	}
	if slices.ContainsFunc(all.Items, func(o corev1.Service) bool { return slices.Contains(o.Spec.ClusterIPs, ip) }) {
		return reconcile.Result{RequeueAfter: syncer.ConflictRetry}, nil // another virtual Service holds it
	}
	uid := v.UID
	if err := s.Virtual.Delete(ctx, v, client.Preconditions{UID: &uid}); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("replacing the virtual kubernetes Service to take %s: %w", ip, err)
	}
	next := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: v.Name, Namespace: v.Namespace, Labels: v.Labels, Annotations: v.Annotations}, Spec: *v.Spec.DeepCopy()}
	next.Spec.ClusterIP, next.Spec.ClusterIPs = ip, []string{ip}
	err = s.Virtual.Create(ctx, next)
	if ipTaken(err) {
		// Taken in the moment since the look: never leave the cluster
		// without its API Service; back to its own address.
		next.Spec.ClusterIP, next.Spec.ClusterIPs = v.Spec.ClusterIP, v.Spec.ClusterIPs
		if err := s.Virtual.Create(ctx, next); err != nil && !apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, fmt.Errorf("recreating the virtual kubernetes Service: %w", err)
		}
		return reconcile.Result{RequeueAfter: syncer.ConflictRetry}, nil
	}
	if err != nil && !apierrors.IsAlreadyExists(err) { // the API server may have put its own back first
		return reconcile.Result{}, fmt.Errorf("recreating the virtual kubernetes Service with %s: %w", ip, err)
	}
	return reconcile.Result{}, nil
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
	if needsHealthCheck(next) && needsHealthCheck(h) {
		// Made anew anyway: it can take the host's health check port too.
		next.Spec.HealthCheckNodePort = h.Spec.HealthCheckNodePort
	}
	// Never lose the tenant's Service: what the virtual side has in use
	// elsewhere falls back, the health check port to the Service's own
	// (freed by the delete), the address to any, and then the next round
	// moves the host twin to it.
	err := s.Virtual.Create(ctx, next)
	moved := false
	for range 2 {
		switch {
		case healthCheckTaken(err) && next.Spec.HealthCheckNodePort != v.Spec.HealthCheckNodePort:
			next.Spec.HealthCheckNodePort = v.Spec.HealthCheckNodePort
		case ipTaken(err) && next.Spec.ClusterIP != "":
			next.Spec.ClusterIP, next.Spec.ClusterIPs = "", nil
			moved = true
		default:
			continue
		}
		err = s.Virtual.Create(ctx, next)
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("recreating virtual service %s with ClusterIP %s: %w", key, hostIP, err)
	}
	if moved {
		return syncer.Requeue(time.Second, s.DeleteHost(ctx, Kind, h))
	}
	return reconcile.Result{}, nil
}
