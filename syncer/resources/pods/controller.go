// Package pods syncs virtual pods down to the host and their status back up,
// and binds each virtual pod to the node the host scheduler chose. It acts as
// the virtual cluster's kubelet.
//
// It must never create a host pod that fails the configured security checks,
// never mount a host credential into a pod, and never touch a host pod that
// is not its own twin.
package pods

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// Nodes makes the virtual node object a pod is about to be bound to.
type Nodes interface {
	Ensure(ctx context.Context, name string) error
}

// Kind is the origin kind of host pods.
const Kind = "Pod"

// Syncer is the pod kind, down: host twins made, kept and stopped.
type Syncer struct {
	syncer.Twin[*corev1.Pod]
	Security *Security
	Nodes    Nodes

	memo        memo
	mu          sync.Mutex
	apiHost     string
	apiLookedUp time.Time
}

// New is the pod kind.
func New(p *syncer.Pair, security *Security, nodes Nodes) *Syncer {
	return &Syncer{Twin: syncer.Twin[*corev1.Pod]{Pair: p, Kind: Kind}, Security: security, Nodes: nodes}
}

// statusUp is the pod kind, up: binding and status from the host twin.
type statusUp struct{ *Syncer }

var (
	_ syncer.Syncer[*corev1.Pod]     = &Syncer{}
	_ syncer.Terminator[*corev1.Pod] = &Syncer{}
	_ syncer.Forgetter               = &Syncer{}
	_ syncer.Syncer[*corev1.Pod]     = statusUp{}
	_ syncer.Terminator[*corev1.Pod] = statusUp{}
)

// SetupWithManager registers the pod syncer as two controllers with their
// own queues: "pod" works on virtual pod events (down: create, update and
// delete host twins), "pod-status" on host pod events (up: binding and
// status). A burst of status changes never delays new pods reaching the host.
func (r *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	down := syncer.For(r.Pair, "pod", Kind, syncer.Syncer[*corev1.Pod](r))
	down.Watch, down.Concurrency = syncer.WatchVirtual, 64
	down.Predicates = []predicate.Predicate{predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return downChanged(e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod))
	}}}
	if err := down.SetupWithManager(mgr); err != nil {
		return err
	}
	up := syncer.For(r.Pair, "pod-status", Kind, syncer.Syncer[*corev1.Pod](statusUp{r}))
	up.Watch, up.Concurrency = syncer.WatchHost, 32
	return up.SetupWithManager(mgr)
}

// downChanged reports whether an update of a virtual pod can change its host
// twin: not the binding or status writes (the syncer's own, mostly), which
// would otherwise wake the "pod" queue two or three times per pod.
func downChanged(old, new *corev1.Pod) bool {
	if old.Generation != new.Generation || !maps.Equal(old.Labels, new.Labels) || !maps.Equal(old.Annotations, new.Annotations) ||
		!old.DeletionTimestamp.Equal(new.DeletionTimestamp) || len(old.Spec.SchedulingGates) != len(new.Spec.SchedulingGates) ||
		len(old.Spec.Containers) != len(new.Spec.Containers) || len(old.Spec.InitContainers) != len(new.Spec.InitContainers) ||
		len(old.Spec.EphemeralContainers) != len(new.Spec.EphemeralContainers) {
		return true
	}
	// Servers that do not count pod generations still change images.
	for i := range new.Spec.Containers {
		if old.Spec.Containers[i].Image != new.Spec.Containers[i].Image {
			return true
		}
	}
	for i := range new.Spec.InitContainers {
		if old.Spec.InitContainers[i].Image != new.Spec.InitContainers[i].Image {
			return true
		}
	}
	return false
}

// Forget drops what is remembered of a pod gone from the virtual cluster.
func (r *Syncer) Forget(key types.NamespacedName) { r.memo.forget(key) }

// SyncDeleting stops the twin of a pod being deleted.
func (r *Syncer) SyncDeleting(ctx context.Context, v, h *corev1.Pod) (reconcile.Result, error) {
	return reconcile.Result{}, r.deleting(ctx, v, h)
}

// Sync keeps the running twin's labels, annotations, images and tokens.
func (r *Syncer) Sync(ctx context.Context, v, h *corev1.Pod) (reconcile.Result, error) {
	r.refuseEphemeralContainers(v)
	refresh, err := r.ensureTokens(ctx, v, h)
	if err != nil {
		return reconcile.Result{}, err
	}
	return syncer.Requeue(refresh, r.updateHost(ctx, v, h))
}

// refuseEphemeralContainers tells the tenant, once per container added,
// that ephemeral containers (kubectl debug) are not run: the host pod's
// spec never takes them, since they would bypass the checks a pod passed
// when it was created.
func (r *Syncer) refuseEphemeralContainers(v *corev1.Pod) {
	n := len(v.Spec.EphemeralContainers)
	key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
	if n == 0 || r.memo.get(key, v.UID).ephemeralReported >= n {
		return
	}
	r.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonEphemeralContainers, "Sync",
		"ephemeral container %q is not run: a virtual cluster does not add containers to a running pod; run a debug pod instead",
		v.Spec.EphemeralContainers[n-1].Name)
	r.memo.update(key, v.UID, func(m *podMemo) { m.ephemeralReported = n })
}

// SyncDeleting: a pod being deleted whose twin is gone is removed; with a
// twin, the down controller stops it.
func (u statusUp) SyncDeleting(ctx context.Context, v, h *corev1.Pod) (reconcile.Result, error) {
	if h != nil {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, u.deleting(ctx, v, nil)
}

// SyncToHost: a pod without a twin that ran has lost it: the pod failed.
func (u statusUp) SyncToHost(ctx context.Context, v *corev1.Pod) (reconcile.Result, error) {
	if v.Spec.NodeName != "" && v.Status.StartTime != nil && v.Status.Phase != corev1.PodSucceeded && v.Status.Phase != corev1.PodFailed {
		return reconcile.Result{}, u.patchStatus(ctx, v, lostStatus(v))
	}
	return reconcile.Result{}, nil
}

// Sync brings the virtual pod's node and status in line with the twin.
func (u statusUp) Sync(ctx context.Context, v, h *corev1.Pod) (reconcile.Result, error) {
	status := virtualStatus(v, h)
	key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
	if h.Spec.NodeName == "" || v.Spec.NodeName != "" || u.memo.get(key, v.UID).boundToNode == h.Spec.NodeName {
		return reconcile.Result{}, u.patchStatus(ctx, v, status)
	}
	if sameStatus(boundStatus(v.Status), status) {
		// The binding sets PodScheduled, which is all the host has to say.
		return reconcile.Result{}, u.bind(ctx, v, h.Spec.NodeName)
	}
	// Binding and status are independent writes: do them at once.
	bound := make(chan error, 1)
	go func() { bound <- u.bind(ctx, v.DeepCopy(), h.Spec.NodeName) }()
	err := u.patchStatus(ctx, v, status)
	return reconcile.Result{}, errors.Join(<-bound, err)
}

// deleting finishes a graceful delete the way a kubelet does: stop the pod
// (delete the host twin with the same grace), then remove the virtual pod.
func (r *Syncer) deleting(ctx context.Context, v, h *corev1.Pod) error {
	if h != nil {
		if h.DeletionTimestamp != nil {
			return nil
		}
		var opts []client.DeleteOption
		if g := v.DeletionGracePeriodSeconds; g != nil {
			opts = append(opts, client.GracePeriodSeconds(*g))
		}
		return r.DeleteHost(ctx, Kind, h, opts...)
	}
	uid := v.UID
	err := r.Virtual.Delete(ctx, v, client.GracePeriodSeconds(0), client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("removing deleted virtual pod: %w", err)
	}
	return nil
}

// SyncToHost creates the twin of a pod that should run.
func (r *Syncer) SyncToHost(ctx context.Context, v *corev1.Pod) (reconcile.Result, error) {
	switch {
	case v.Status.Phase == corev1.PodSucceeded || v.Status.Phase == corev1.PodFailed:
		return reconcile.Result{}, nil
	case len(v.Spec.SchedulingGates) > 0:
		return reconcile.Result{}, nil // a virtual controller still holds it back
	case v.Spec.NodeName != "" && v.Status.StartTime != nil:
		// It ran, and its host twin is gone (also when that happened while
		// the syncer was down): the pod failed.
		return reconcile.Result{}, r.patchStatus(ctx, v, lostStatus(v))
	}
	env, err := r.env(ctx, v)
	if err != nil {
		return reconcile.Result{}, err
	}
	reason := r.Security.Check(v)
	if reason == "" {
		if err := r.CheckRefs(ctx, syncer.PodRefs(v)); err != nil {
			if reason = syncer.RefReason(err); reason == "" {
				return reconcile.Result{}, err
			}
		}
	}
	if reason != "" {
		if v.Status.Reason == ReasonPodSecurity {
			return reconcile.Result{}, nil
		}
		r.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonPodSecurity, "Sync", "refused: %s", reason)
		return reconcile.Result{}, r.patchStatus(ctx, v, refusedStatus(v, reason))
	}
	spec := v.Spec.DeepCopy()
	spec.NodeName = "" // refused above unless the syncer bound it
	if dropped := placement(spec, env.Workloads); len(dropped) > 0 {
		r.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonPlacement, "Sync",
			"not carried to the host (outside the platform's placement): %s", strings.Join(dropped, ", "))
	}
	h := HostPod(v, env)
	if err := r.CreateHost(ctx, Kind, v, h); err != nil {
		return reconcile.Result{}, err
	}
	// The token Secret needs the new twin's UID (the twin owns it). Until it
	// exists the host pod waits for its volume, as a kubelet would.
	refresh, err := r.ensureTokens(ctx, v, h)
	return syncer.Requeue(refresh, err)
}

// updateHost carries over what may change on a running pod: labels,
// annotations and container images.
func (r *Syncer) updateHost(ctx context.Context, v, h *corev1.Pod) error {
	want := h.DeepCopy()
	want.Labels = translate.HostLabels(v.Labels)
	want.Annotations = hostAnnotations(v.Annotations, r.Config.Workloads.PodAnnotations)
	want.Annotations[AnnotationServiceAccount] = v.Spec.ServiceAccountName
	r.Names.Mark(want, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	for i := range want.Spec.Containers {
		if i < len(v.Spec.Containers) {
			want.Spec.Containers[i].Image = v.Spec.Containers[i].Image
		}
	}
	for i := range want.Spec.InitContainers {
		if i < len(v.Spec.InitContainers) {
			want.Spec.InitContainers[i].Image = v.Spec.InitContainers[i].Image
		}
	}
	return r.PatchHost(ctx, Kind, want, h)
}

// bind assigns the virtual pod to the node the host scheduler chose, after
// making sure that node exists in the virtual cluster.
func (r *Syncer) bind(ctx context.Context, v *corev1.Pod, node string) error {
	if err := r.Nodes.Ensure(ctx, node); err != nil {
		return err
	}
	b := &corev1.Binding{Target: corev1.ObjectReference{Kind: "Node", Name: node}}
	b.Name, b.Namespace, b.UID = v.Name, v.Namespace, v.UID
	if err := r.Virtual.SubResource("binding").Create(ctx, v, b); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("binding virtual pod to node %s: %w", node, err)
	}
	r.memo.update(types.NamespacedName{Namespace: v.Namespace, Name: v.Name}, v.UID, func(m *podMemo) { m.boundToNode = node })
	return nil
}

func (r *Syncer) patchStatus(ctx context.Context, v *corev1.Pod, want corev1.PodStatus) error {
	if sameStatus(v.Status, want) {
		return nil
	}
	patched := v.DeepCopy()
	patched.Status = want
	return r.PatchVirtualStatus(ctx, patched, v)
}

// env gathers the virtual facts a pod's translation depends on.
func (r *Syncer) env(ctx context.Context, v *corev1.Pod) (Env, error) {
	env := Env{Names: r.Names, ClusterDomain: "cluster.local", APIHost: r.apiServiceIP(ctx), Workloads: r.Config.Workloads}
	var svcs corev1.ServiceList
	if err := r.Virtual.List(ctx, &svcs, client.InNamespace(v.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return env, fmt.Errorf("listing virtual services: %w", err)
	}
	env.Services = svcs.Items
	dns := &corev1.Service{}
	if err := r.Virtual.Get(ctx, types.NamespacedName{Namespace: "kube-system", Name: "kube-dns"}, dns); err == nil {
		if ip := dns.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			env.DNSServer = ip
		}
	}
	r.Security.Nameservers.SetVirtualDNS(env.DNSServer)
	return env, nil
}

// apiServiceIP is the ClusterIP of the host Service that serves the virtual
// API, read once it exists (looked for at most every 30 seconds until then).
func (r *Syncer) apiServiceIP(ctx context.Context) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.apiHost != "" || time.Since(r.apiLookedUp) < 30*time.Second {
		return r.apiHost
	}
	r.apiLookedUp = time.Now()
	svc := &corev1.Service{}
	key := types.NamespacedName{Namespace: r.Names.HostNamespace, Name: r.Config.ServiceName}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.HostReader.Get(ctx, key, svc); err == nil && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		r.apiHost = svc.Spec.ClusterIP
	}
	return r.apiHost
}

// sameStatus compares pod statuses, ignoring condition timestamps when a
// condition's type, status, reason and message are unchanged (the virtual
// API stamps its own times, for example when binding sets PodScheduled).
func sameStatus(have, want corev1.PodStatus) bool {
	want = *want.DeepCopy()
	for i := range want.Conditions {
		w := &want.Conditions[i]
		if c := findCondition(have.Conditions, w.Type); c != nil && c.Status == w.Status && c.Reason == w.Reason && c.Message == w.Message {
			w.LastProbeTime, w.LastTransitionTime = c.LastProbeTime, c.LastTransitionTime
		}
	}
	return equality.Semantic.DeepEqual(have, want)
}
