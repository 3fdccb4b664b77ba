// Package syncer holds what every synced kind (syncer/resources/<kind>)
// shares: the clients of
// the virtual and the host API, the name translator, the event recorder, and
// the few host writes that enforce ownership (create with conflict check,
// update and delete only of objects the syncer marked as its own).
//
// It must never write a host object that lacks this cluster's ownership
// marks, and never write outside the one host namespace.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// Pair is the virtual cluster and its slice of the host.
type Pair struct {
	Config *config.Config
	Names  translate.Translator

	Virtual       client.Client // reads from the virtual cache
	VirtualReader client.Reader // reads the virtual API directly
	Host          client.Client // reads from the host cache: this cluster's synced objects in the host namespace
	HostReader    client.Reader // reads the host API directly (conflict checks, objects outside the cache)
	HostCluster   cluster.Cluster

	// Events are recorded in the virtual cluster, where tenants read them.
	Events events.EventRecorder
}

// ErrConflict means a host object with the wanted name exists and is not
// this syncer's twin of the virtual object. It has been reported as an event.
var ErrConflict = errors.New("host name taken by an object the syncer does not own")

// ErrStale means a write was refused because the object changed since it
// was read; the Reconciler tries again shortly (a newer event is on its way).
var ErrStale = errors.New("changed since read")

// ConflictRetry is how often a conflicting virtual object is checked again,
// in case the foreign host object went away.
const ConflictRetry = time.Minute

// CreateHost creates host, the twin of virtual of the given kind. When the
// name is taken by a foreign object nothing is changed, a Warning event is
// recorded on virtual and ErrConflict is returned. When it is taken by the
// syncer's own twin (a cache lagging behind) nil is returned.
func (p *Pair) CreateHost(ctx context.Context, kind string, virtual, host client.Object) error {
	host.SetNamespace(p.Names.HostNamespace)
	err := p.Host.Create(ctx, host)
	if apierrors.IsForbidden(err) {
		// A quota or an admission policy of the host namespace: the tenant
		// would otherwise see nothing but a pod that stays Pending. The
		// caller retries with backoff.
		p.Events.Eventf(virtual, nil, corev1.EventTypeWarning, "HostRefused", "Sync",
			"the host refused the %s: %s", kind, hostReason(err))
	}
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("creating host %s %s: %w", kind, host.GetName(), err)
		}
		return nil
	}
	existing := host.DeepCopyObject().(client.Object)
	if err := p.HostReader.Get(ctx, client.ObjectKeyFromObject(host), existing); err != nil {
		return fmt.Errorf("reading host %s %s after a name clash: %w", kind, host.GetName(), err)
	}
	if p.Names.Owns(existing, kind, virtual.GetNamespace(), virtual.GetName()) {
		return nil
	}
	p.Conflict(virtual, kind, host.GetName())
	return ErrConflict
}

// UpdateHost writes next, a changed copy of the host twin h of kind, unless
// nothing changed. A twin gone meanwhile is no error (its event follows);
// one changed meanwhile is ErrStale.
func (p *Pair) UpdateHost(ctx context.Context, kind string, next, h client.Object) error {
	if equality.Semantic.DeepEqual(next, h) {
		return nil
	}
	err := p.Host.Update(ctx, next)
	switch {
	case err == nil || apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return fmt.Errorf("updating host %s %s: %w", kind, h.GetName(), ErrStale)
	}
	return fmt.Errorf("updating host %s %s: %w", kind, h.GetName(), err)
}

// PatchHost is UpdateHost as a merge patch from h, for kinds whose twins
// other controllers write too (a pod's status, a claim's binding).
func (p *Pair) PatchHost(ctx context.Context, kind string, next, h client.Object) error {
	if equality.Semantic.DeepEqual(next, h) {
		return nil
	}
	if err := p.Host.Patch(ctx, next, client.MergeFrom(h)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating host %s %s: %w", kind, h.GetName(), err)
	}
	return nil
}

// PatchVirtualStatus writes next's status, a changed copy of the virtual
// object v, as a merge patch, unless it is unchanged. A virtual object gone
// meanwhile is no error.
func (p *Pair) PatchVirtualStatus(ctx context.Context, next, v client.Object) error {
	if equality.Semantic.DeepEqual(next, v) {
		return nil
	}
	if err := p.Virtual.Status().Patch(ctx, next, client.MergeFrom(v)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating the status of virtual %T %s/%s: %w", v, v.GetNamespace(), v.GetName(), err)
	}
	return nil
}

// hostReason is what the host API said, without the host object's own
// "<resource> "<name>" is forbidden: " preamble.
func hostReason(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "is forbidden: "); i >= 0 {
		return msg[i+len("is forbidden: "):]
	}
	return msg
}

// Conflict records that the host name of virtual is taken by a foreign object.
func (p *Pair) Conflict(virtual client.Object, kind, hostName string) {
	p.Events.Eventf(virtual, nil, corev1.EventTypeWarning, "HostNameConflict", "Sync",
		"not synced: the host already has a %s named %q that this virtual cluster did not create; it is left untouched", kind, hostName)
}

// DeleteHost deletes host if, and only if, it is the syncer's twin of a
// virtual object of kind. It is a no-op for foreign or already gone objects.
func (p *Pair) DeleteHost(ctx context.Context, kind string, host client.Object, opts ...client.DeleteOption) error {
	o, ok := p.Names.OriginOf(host)
	if !ok || o.Kind != kind {
		return nil
	}
	uid := host.GetUID()
	opts = append(opts, client.Preconditions{UID: &uid})
	if err := p.Host.Delete(ctx, host, opts...); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting host %s %s: %w", kind, host.GetName(), err)
	}
	return nil
}

// HostTwin reads the host twin of the virtual object kind namespace/name from
// the host cache. found is false when there is none; a host object with that
// name that is not the twin is reported with ok=false, found=true.
func (p *Pair) HostTwin(ctx context.Context, kind, namespace, name string, into client.Object) (found, owned bool, err error) {
	key := types.NamespacedName{Namespace: p.Names.HostNamespace, Name: p.Names.HostName(namespace, name)}
	if err := p.Host.Get(ctx, key, into); err != nil {
		if apierrors.IsNotFound(err) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("reading host %s %s: %w", kind, key.Name, err)
	}
	return true, p.Names.Owns(into, kind, namespace, name), nil
}

// WatchHost is a source of reconcile requests for the virtual objects whose
// host twins of kind change, so host drift and orphans are noticed.
func (p *Pair) WatchHost(obj client.Object, kind string) source.Source {
	return source.Kind(p.HostCluster.GetCache(), obj, handler.EnqueueRequestsFromMapFunc(
		func(_ context.Context, o client.Object) []reconcile.Request {
			origin, ok := p.Names.OriginOf(o)
			if !ok || origin.Kind != kind {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: origin.Namespace, Name: origin.Name}}}
		}))
}

// VirtualGone confirms with a live read that the virtual object key no
// longer exists, so a lagging cache never causes a host twin to be deleted.
func (p *Pair) VirtualGone(ctx context.Context, key types.NamespacedName, obj client.Object) (bool, error) {
	err := p.VirtualReader.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("confirming virtual %T %s is gone: %w", obj, key, err)
	}
	return false, nil
}

// Requeue returns a result that retries after d, unless err is set (errors
// are retried with backoff by the controller).
func Requeue(d time.Duration, err error) (reconcile.Result, error) {
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: d}, nil
}
