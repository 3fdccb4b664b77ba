package syncer

import (
	"context"
	"errors"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Watch says which side's changes wake a Reconciler.
type Watch int

const (
	// WatchBoth: virtual objects and their host twins (the default).
	WatchBoth Watch = iota
	// WatchVirtual: virtual objects only.
	WatchVirtual
	// WatchHost: host twins only (a status-up controller beside a down
	// one). Conflicts are then left for the down controller to report.
	WatchHost
)

// staleRetry is how soon a write refused as stale (the object changed
// since it was read) is tried again.
const staleRetry = time.Second

// Reconciler is the one controller every twin kind runs on: requests name
// virtual objects, whose host twins are found by the translated name.
type Reconciler[T client.Object] struct {
	*Pair
	Name   string   // controller name
	Kind   string   // origin kind written on host twins
	New    func() T // an empty object of the kind
	Syncer Syncer[T]

	Watch       Watch
	Predicates  []predicate.Predicate // on virtual object events
	Concurrency int                   // parallel reconciles (0: one)
}

// SetupWithManager registers the controller.
func (r *Reconciler[T]) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).Named(r.Name)
	if r.Watch != WatchHost {
		b = b.For(r.New(), builder.WithPredicates(r.Predicates...))
	}
	if r.Watch != WatchVirtual {
		b = b.WatchesRawSource(r.WatchHost(r.New(), r.Kind))
	}
	if w, ok := r.Syncer.(Watcher); ok {
		b = w.Watch(b)
	}
	if r.Concurrency > 0 {
		b = b.WithOptions(controller.Options{MaxConcurrentReconciles: r.Concurrency})
	}
	return b.Complete(r)
}

// Reconcile reads both twins and dispatches.
func (r *Reconciler[T]) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.dispatch(ctx, req.NamespacedName)
	switch {
	case errors.Is(err, ErrConflict):
		return reconcile.Result{RequeueAfter: ConflictRetry}, nil
	case errors.Is(err, ErrStale):
		return reconcile.Result{RequeueAfter: staleRetry}, nil
	}
	return res, err
}

func (r *Reconciler[T]) dispatch(ctx context.Context, key types.NamespacedName) (reconcile.Result, error) {
	v, exists, err := r.virtual(ctx, key, r.Virtual)
	if err != nil {
		return reconcile.Result{}, err
	}
	h := r.New()
	found, owned, err := r.HostTwin(ctx, r.Kind, key.Namespace, key.Name, h)
	switch {
	case err != nil:
		return reconcile.Result{}, err
	case found && !owned:
		return r.foreign(v, exists, h)
	case !found:
		var none T
		h = none
	}
	if refresher, ok := r.Syncer.(Refresher[T]); ok && exists && found && refresher.Stale(v, h) {
		if v, exists, err = r.virtual(ctx, key, r.VirtualReader); err != nil {
			return reconcile.Result{}, err
		}
	}
	if !exists {
		return r.gone(ctx, key, h, found)
	}
	wanted, err := r.wanted(ctx, v)
	switch {
	case err != nil:
		return reconcile.Result{}, err
	case !wanted:
		return r.unwanted(ctx, key, v, h, found)
	case !found:
		return r.Syncer.SyncToHost(ctx, v)
	}
	return r.Syncer.Sync(ctx, v, h)
}

// virtual reads the virtual object (from the cache, or live); exists is
// false when it is not there.
func (r *Reconciler[T]) virtual(ctx context.Context, key types.NamespacedName, from client.Reader) (v T, exists bool, err error) {
	v = r.New()
	if err := from.Get(ctx, key, v); err != nil {
		return v, false, client.IgnoreNotFound(err)
	}
	return v, true, nil
}

// foreign leaves a host object this cluster did not create alone: the
// tenant is told (by the controller that watches virtual objects), and it
// is looked at again after ConflictRetry, in case it went away.
func (r *Reconciler[T]) foreign(v T, exists bool, h T) (reconcile.Result, error) {
	if r.Watch == WatchHost {
		return reconcile.Result{}, nil
	}
	if exists {
		r.Conflict(v, r.Kind, h.GetName())
	}
	return reconcile.Result{RequeueAfter: ConflictRetry}, nil
}

// gone handles a virtual object absent from the cache: only a live read
// that confirms it lets the twin go.
func (r *Reconciler[T]) gone(ctx context.Context, key types.NamespacedName, h T, found bool) (reconcile.Result, error) {
	r.forget(key)
	cleaner, cleans := r.Syncer.(VirtualCleaner)
	if !found && !cleans {
		return reconcile.Result{}, nil
	}
	if gone, err := r.VirtualGone(ctx, key, r.New()); !gone {
		return Requeue(time.Second, err)
	}
	if cleans {
		if err := cleaner.CleanupVirtual(ctx, key); err != nil {
			return reconcile.Result{}, err
		}
	}
	if !found {
		return reconcile.Result{}, nil
	}
	return r.Syncer.SyncToVirtual(ctx, key, h)
}

// wanted: not being deleted, and (for kinds that filter) wanted.
func (r *Reconciler[T]) wanted(ctx context.Context, v T) (bool, error) {
	if v.GetDeletionTimestamp() != nil {
		return false, nil
	}
	if f, ok := r.Syncer.(Filter[T]); ok {
		return f.Wanted(ctx, v)
	}
	return true, nil
}

// unwanted handles a virtual object that is being deleted or that the kind
// does not sync: its twin goes (pods first stop theirs, see Terminator).
func (r *Reconciler[T]) unwanted(ctx context.Context, key types.NamespacedName, v, h T, found bool) (reconcile.Result, error) {
	if t, ok := r.Syncer.(Terminator[T]); ok && v.GetDeletionTimestamp() != nil {
		return t.SyncDeleting(ctx, v, h)
	}
	r.forget(key)
	if !found {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, r.DeleteHost(ctx, r.Kind, h)
}

func (r *Reconciler[T]) forget(key types.NamespacedName) {
	if f, ok := r.Syncer.(Forgetter); ok {
		f.Forget(key)
	}
}

// For is the controller of a twin kind: name is the controller's, kind the
// origin kind written on host twins.
func For[T client.Object](p *Pair, name, kind string, s Syncer[T]) *Reconciler[T] {
	return &Reconciler[T]{Pair: p, Name: name, Kind: kind, Syncer: s, New: NewObject[T]}
}

// NewObject is an empty object of the kind T points to.
func NewObject[T client.Object]() T {
	var zero T
	return reflect.New(reflect.TypeOf(zero).Elem()).Interface().(T)
}

// Twin is embedded by a kind's Syncer: the Pair, the kind, and the usual
// SyncToVirtual, which deletes a twin whose virtual object is gone.
type Twin[T client.Object] struct {
	*Pair
	Kind string
}

// SyncToVirtual deletes the twin of a deleted virtual object.
func (t Twin[T]) SyncToVirtual(ctx context.Context, _ types.NamespacedName, h T) (reconcile.Result, error) {
	return reconcile.Result{}, t.DeleteHost(ctx, t.Kind, h)
}

// Refuse tells the tenant why the virtual object v does not reach the host
// (a Warning event of reason, "not synced to the host: why") and removes
// its twin h, if there is one (nil: none). When err is set it is returned
// instead, and nothing is told or removed.
func (t Twin[T]) Refuse(ctx context.Context, reason string, v T, h client.Object, why string, err error) (reconcile.Result, error) {
	if err != nil {
		return reconcile.Result{}, err
	}
	t.Events.Eventf(v, nil, corev1.EventTypeWarning, reason, "Sync", "not synced to the host: %s", why)
	if h == nil {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, t.DeleteHost(ctx, t.Kind, h)
}

// CreateOrRefuse creates h, the twin of v (CreateHost), or, when why or err
// is set, refuses v instead (see Refuse).
func (t Twin[T]) CreateOrRefuse(ctx context.Context, reason string, v T, h client.Object, why string, err error) (reconcile.Result, error) {
	if err != nil || why != "" {
		return t.Refuse(ctx, reason, v, nil, why, err)
	}
	return reconcile.Result{}, t.CreateHost(ctx, t.Kind, v, h)
}
