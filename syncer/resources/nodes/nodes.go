// Package nodes keeps, in the virtual cluster, one Node object for every host
// node that runs a synced pod, and removes it when no virtual pod is bound to
// it any more. It heartbeats those nodes (their Lease) the way a kubelet
// would, so the virtual node-lifecycle controller keeps them Ready.
//
// In fake mode a node is made from its name only; in real mode the host
// node's labels, capacity, addresses and conditions are copied. It never
// writes to host nodes, and never deletes a virtual node it did not create.
package nodes

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
)

// heartbeat is how often a node's Lease is renewed; leaseDuration is what
// the Lease promises.
const (
	heartbeat     = 10 * time.Second
	leaseDuration = 40
)

// Syncer is the node kind, mirrored up: a virtual Node exists while a pod
// of this cluster runs on its host node.
type Syncer struct {
	*syncer.Pair

	ensuring sync.Mutex // one creation of a node at a time
	// beats says when each node's heartbeat was last written.
	beats stamps
	// ensured says when a pod about to be bound last needed the node: the
	// caches show neither the new node nor the binding for a moment, and
	// that must neither create the node twice nor remove it as unused.
	ensured stamps
}

var _ syncer.Syncer[*corev1.Node] = &Syncer{}

// stamps remembers, per node, when something last happened.
type stamps struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (t *stamps) mark(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.at == nil {
		t.at = map[string]time.Time{}
	}
	t.at[name] = time.Now()
}

// since is how long ago it happened (ok false: never).
func (t *stamps) since(name string) (d time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.at[name]
	return time.Since(at), ok
}

func (t *stamps) forget(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.at, name)
}

// recent reports whether it happened less than d ago.
func (t *stamps) recent(name string, d time.Duration) bool {
	since, ok := t.since(name)
	return ok && since < d
}

// ensureGrace is how long a node a pod was about to be bound to is kept
// without a pod bound to it.
const ensureGrace = time.Minute

// SetupWithManager registers the node syncer.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("node").
		For(&corev1.Node{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return syncer.Requests("", syncer.PodNodeIndexer(o))
		})).
		Complete(s)
}

// Ensure makes the virtual node name exist before a pod is bound to it.
func (s *Syncer) Ensure(ctx context.Context, name string) error {
	s.ensuring.Lock()
	defer s.ensuring.Unlock()
	recent := s.ensured.recent(name, ensureGrace)
	s.ensured.mark(name) // before creating: the new node's own event must not find it unused
	if recent {
		return nil
	}
	n := &corev1.Node{}
	err := s.Virtual.Get(ctx, types.NamespacedName{Name: name}, n)
	if apierrors.IsNotFound(err) {
		err = s.create(ctx, name)
	}
	if err != nil {
		s.ensured.forget(name)
		return fmt.Errorf("making virtual node %s: %w", name, err)
	}
	return nil
}

// Reconcile keeps a needed node fresh and removes an unneeded one. The
// host side of a node is "a pod of this cluster runs there": the host Node
// itself is read only to describe it (real mode, see describe).
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pods corev1.PodList
	if err := s.Virtual.List(ctx, &pods, client.MatchingFields{syncer.PodNodeIndex: req.Name}, client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing pods on node %s: %w", req.Name, err)
	}
	n := &corev1.Node{}
	err := s.Virtual.Get(ctx, types.NamespacedName{Name: req.Name}, n)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	exists := err == nil
	if exists && n.Labels[v1alpha1.SyncerManagedByLabel] != v1alpha1.SyncerManagedByValue {
		return reconcile.Result{}, nil // the tenant's own node object
	}
	used := len(pods.Items) > 0
	if since, ok := s.ensured.since(req.Name); !used && ok && since < ensureGrace {
		// A pod was about to be bound to it moments ago: the caches may
		// not show the binding (or the node) yet.
		return reconcile.Result{RequeueAfter: ensureGrace - since}, nil
	}
	return syncer.Dispatch(ctx, syncer.Syncer[*corev1.Node](s), req.NamespacedName, n, exists, nil, used)
}

// SyncToHost: no pod of this cluster is bound to the node any more, so its
// virtual node goes.
func (s *Syncer) SyncToHost(ctx context.Context, n *corev1.Node) (reconcile.Result, error) {
	if err := s.Virtual.Delete(ctx, n); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("removing unused virtual node %s: %w", n.Name, err)
	}
	return reconcile.Result{}, nil
}

// SyncToVirtual makes the virtual node of a node a pod runs on.
func (s *Syncer) SyncToVirtual(ctx context.Context, key types.NamespacedName, _ *corev1.Node) (reconcile.Result, error) {
	if err := s.create(ctx, key.Name); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: heartbeat}, nil
}

// Sync heartbeats a node pods run on, and refreshes what it says; pod
// events wake this up often, so only when a heartbeat is due.
func (s *Syncer) Sync(ctx context.Context, n, _ *corev1.Node) (reconcile.Result, error) {
	if since, ok := s.beats.since(n.Name); ok && since < heartbeat {
		return reconcile.Result{RequeueAfter: heartbeat - since}, nil
	}
	if err := s.refresh(ctx, n); err != nil {
		return reconcile.Result{}, err
	}
	if err := s.renewLease(ctx, n); err != nil {
		return reconcile.Result{}, err
	}
	s.beats.mark(n.Name)
	return reconcile.Result{RequeueAfter: heartbeat}, nil
}

func (s *Syncer) create(ctx context.Context, name string) error {
	n := &corev1.Node{}
	n.Name = name
	if err := s.describe(ctx, n); err != nil {
		return err
	}
	status := n.Status
	if err := s.Virtual.Create(ctx, n); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return fmt.Errorf("creating virtual node %s: %w", name, err)
	}
	patched := n.DeepCopy()
	patched.Status = status
	if err := s.Virtual.Status().Patch(ctx, patched, client.MergeFrom(n)); err != nil {
		return fmt.Errorf("writing virtual node %s status: %w", name, err)
	}
	return s.renewLease(ctx, n)
}

// refresh rewrites the node's facts and Ready heartbeat when they changed.
func (s *Syncer) refresh(ctx context.Context, n *corev1.Node) error {
	want := n.DeepCopy()
	if err := s.describe(ctx, want); err != nil {
		return err
	}
	if ready := findReady(n); ready != nil && time.Since(ready.LastHeartbeatTime.Time) < time.Minute {
		if r := findReady(want); r != nil && r.Status == ready.Status {
			r.LastHeartbeatTime = ready.LastHeartbeatTime
			r.LastTransitionTime = ready.LastTransitionTime
		}
	}
	if !equality.Semantic.DeepEqual(want.Status, n.Status) {
		patched := n.DeepCopy()
		patched.Status = want.Status
		if err := s.Virtual.Status().Patch(ctx, patched, client.MergeFrom(n)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("updating virtual node %s status: %w", n.Name, err)
		}
	}
	if !equality.Semantic.DeepEqual(want.Labels, n.Labels) {
		patched := n.DeepCopy()
		patched.Labels = want.Labels
		if err := s.Virtual.Patch(ctx, patched, client.MergeFrom(n)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("updating virtual node %s labels: %w", n.Name, err)
		}
	}
	return nil
}

// describe fills in what the virtual cluster is told about node n.
func (s *Syncer) describe(ctx context.Context, n *corev1.Node) error {
	now := metav1.Now()
	labels := map[string]string{
		corev1.LabelHostname:          n.Name,
		corev1.LabelOSStable:          "linux",
		v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue,
	}
	ready := corev1.NodeCondition{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "runs pods of this virtual cluster", LastHeartbeatTime: now, LastTransitionTime: now,
	}
	if old := findReady(n); old != nil && old.Status == ready.Status {
		ready.LastTransitionTime = old.LastTransitionTime
	}
	n.Status.Conditions = []corev1.NodeCondition{ready}
	if s.Config.Nodes == config.NodesReal {
		host := &corev1.Node{}
		if err := s.HostReader.Get(ctx, types.NamespacedName{Name: n.Name}, host); err != nil {
			return fmt.Errorf("reading host node %s: %w", n.Name, err)
		}
		for k, v := range host.Labels {
			labels[k] = v
		}
		n.Status.Capacity = host.Status.Capacity
		n.Status.Allocatable = host.Status.Allocatable
		n.Status.Addresses = host.Status.Addresses
		n.Status.NodeInfo = host.Status.NodeInfo
		n.Status.Conditions = host.Status.Conditions
	}
	advertiseKubelet(n, s.Config)
	n.Labels = labels
	return nil
}

// advertiseKubelet points the virtual API server at the kubelet API the
// syncer serves: its address first, as the InternalIP the API server is told
// to prefer, and its port. The host's own addresses (real nodes) follow.
func advertiseKubelet(n *corev1.Node, cfg *config.Config) {
	if !cfg.KubeletEnabled() {
		return
	}
	ip, port, err := cfg.KubeletEndpoint()
	if err != nil {
		return // validated at start
	}
	ours := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
	addresses := []corev1.NodeAddress{ours}
	for _, a := range n.Status.Addresses {
		if a != ours { // the API server refuses a node that lists an address twice
			addresses = append(addresses, a)
		}
	}
	n.Status.Addresses = addresses
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = port
}

func findReady(n *corev1.Node) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// renewLease heartbeats the node in kube-node-lease, like a kubelet.
func (s *Syncer) renewLease(ctx context.Context, n *corev1.Node) error {
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{}
	key := types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: n.Name}
	err := s.VirtualReader.Get(ctx, key, lease)
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(n.Name), LeaseDurationSeconds: ptr.To(int32(leaseDuration)), RenewTime: &now,
		}}
		lease.Name, lease.Namespace = key.Name, key.Namespace
		lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
		if err := s.Virtual.Create(ctx, lease); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating node lease %s: %w", n.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading node lease %s: %w", n.Name, err)
	}
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(n.Name)
	if err := s.Virtual.Update(ctx, lease); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("renewing node lease %s: %w", n.Name, err)
	}
	return nil
}
