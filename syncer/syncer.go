// Package syncer is the framework every synced kind is built on, in
// vcluster's shape: one generic Reconciler reads a virtual object and its
// host twin, enforces ownership, confirms a virtual object's absence with a
// live read, and calls the kind's Syncer, which only translates down,
// updates, and (where needed) brings status up. The kinds live in
// syncer/resources/<kind>; syncer/setup wires them.
//
// What the framework holds, and no kind repeats:
//   - Pair: the virtual and host clients, the name translator and the event
//     recorder, with the only host writes that enforce ownership (CreateHost,
//     UpdateHost, DeleteHost).
//   - Reconciler: the dispatch to SyncToHost, Sync and SyncToVirtual; for
//     the kinds whose two sides are not a virtual object and its twin of the
//     translated name (storage classes, nodes, events, the namespace sweep),
//     Dispatch, the same choice over sides the kind read itself.
//   - Twin: what a twin kind embeds; its Refuse (and CreateOrRefuse) is the
//     one way a kind tells the tenant that an object does not reach the host.
//   - References (refs.go): the one place where a reference from one virtual
//     object to another (a pod's Secret, ConfigMap or claim, an Ingress's
//     Service or TLS Secret) is listed (PodRefs, IngressRefs), indexed
//     (IndexPodRefs, IndexIngressRefs), and translated to its host name
//     with the check that the host object of that name is the syncer's twin
//     of exactly that virtual object (HostRef, CheckRefs). An isolation
//     check on references goes into HostRef, so every kind gets it.
//
// It must never write a host object that lacks this cluster's ownership
// marks, never write outside the one host namespace, never adopt a host
// object it did not create, and never delete a host twin on the word of a
// cache alone.
package syncer

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Syncer is what a synced kind implements; Reconciler decides which call
// applies. Each call gets objects the framework already read and checked:
// a host object is always the syncer's own twin of the virtual one.
type Syncer[T client.Object] interface {
	// SyncToHost: the virtual object exists and is wanted on the host, and
	// has no host twin: translate it down and create the twin (CreateHost).
	SyncToHost(ctx context.Context, virtual T) (reconcile.Result, error)
	// Sync: both exist: bring the twin in line (UpdateHost) and, where the
	// kind has any, status up.
	Sync(ctx context.Context, virtual, host T) (reconcile.Result, error)
	// SyncToVirtual: the host twin exists and the virtual object is gone,
	// confirmed by a live read: usually delete the twin (DeleteHost).
	SyncToVirtual(ctx context.Context, key types.NamespacedName, host T) (reconcile.Result, error)
}

// Filter is implemented by kinds that sync only some virtual objects
// (EndpointSlices of Services without a selector, ConfigMaps in use).
// Wanted is asked of a virtual object that is not being deleted; an
// unwanted object's host twin is deleted.
type Filter[T client.Object] interface {
	Wanted(ctx context.Context, virtual T) (bool, error)
}

// Terminator is implemented by kinds whose virtual objects wait for their
// host twin while being deleted (pods stop as a kubelet stops them). host
// is nil when there is no twin. Without it, a virtual object being deleted
// loses its twin at once.
type Terminator[T client.Object] interface {
	SyncDeleting(ctx context.Context, virtual, host T) (reconcile.Result, error)
}

// Forgetter is implemented by kinds that remember something per virtual
// object: Forget is called whenever the object has no wanted twin (gone
// from the cache, being deleted, or unwanted).
type Forgetter interface {
	Forget(key types.NamespacedName)
}

// VirtualCleaner is implemented by kinds that make virtual objects for a
// virtual object (a claim's PersistentVolume): CleanupVirtual runs once the
// virtual object is confirmed gone, whether or not a host twin is left.
type VirtualCleaner interface {
	CleanupVirtual(ctx context.Context, key types.NamespacedName) error
}

// Refresher is implemented by kinds where a cached virtual object must not
// be pushed to the host as it is: when Stale says so, the virtual object
// is read again live before Sync (a Service whose node ports differ from
// its twin's: a tenant's choice, or a cache that has not seen the twin's).
type Refresher[T client.Object] interface {
	Stale(virtual, host T) bool
}

// Watcher is implemented by kinds whose virtual objects also change with
// other objects (an EndpointSlice with its Service, a ConfigMap with the
// pods that use it): Watch adds those watches to the kind's controller.
type Watcher interface {
	Watch(b *builder.Builder) *builder.Builder
}

// Dispatch is the Reconciler's choice for kinds that find their two sides
// themselves (host objects mirrored or copied up, sweeps): Sync when both
// exist, SyncToHost when only the virtual one does, SyncToVirtual when only
// the host one does, and nothing when neither does.
func Dispatch[T client.Object](ctx context.Context, s Syncer[T], key types.NamespacedName, v T, inVirtual bool, h T, onHost bool) (reconcile.Result, error) {
	switch {
	case inVirtual && onHost:
		return s.Sync(ctx, v, h)
	case inVirtual:
		return s.SyncToHost(ctx, v)
	case onHost:
		return s.SyncToVirtual(ctx, key, h)
	}
	return reconcile.Result{}, nil
}
