package syncer

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer/translate"
)

// Copy is the Syncer of a kind that is copied to the host only while a
// synced object references it (ConfigMaps and Secrets, used by accepted
// pods or, for Secrets, as TLS by synced Ingresses), and whose twin is a
// plain copy of its payload. The kind supplies CopyData.
type Copy[T client.Object] struct {
	*Pair
	Kind string
	New  func() T
	// PodIndex is the index of virtual pods by the objects of Kind they use
	// (see IndexPodRefs).
	PodIndex string
	// IngressUsers: TLS Secrets of synced Ingresses count as used too.
	IngressUsers bool
	// CopyData copies the payload of v into h.
	CopyData func(v, h T)
}

var (
	_ Syncer[*corev1.ConfigMap] = &Copy[*corev1.ConfigMap]{}
	_ Filter[*corev1.Secret]    = &Copy[*corev1.Secret]{}
	_ Watcher                   = &Copy[*corev1.Secret]{}
)

// Watch requeues the objects a pod (or an Ingress) uses when it changes.
func (c *Copy[T]) Watch(b *builder.Builder) *builder.Builder {
	b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return Requests(o.GetNamespace(), RefNames(PodRefs(o.(*corev1.Pod)), c.Kind))
	}))
	if c.IngressUsers {
		b = b.Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return Requests(o.GetNamespace(), RefNames(IngressRefs(o.(*networkingv1.Ingress)), c.Kind))
		}))
	}
	return b
}

// Requests are reconcile requests for the named objects of one namespace.
func Requests(namespace string, names []string) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(names))
	for _, name := range names {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}})
	}
	return out
}

// Wanted: one user is enough to know (and cheap to find).
func (c *Copy[T]) Wanted(ctx context.Context, v T) (bool, error) {
	var pods corev1.PodList
	if err := c.Virtual.List(ctx, &pods, client.InNamespace(v.GetNamespace()), client.MatchingFields{c.PodIndex: v.GetName()}, client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("listing pods using %s %s/%s: %w", c.Kind, v.GetNamespace(), v.GetName(), err)
	}
	if len(pods.Items) > 0 || !c.IngressUsers {
		return len(pods.Items) > 0, nil
	}
	var ings networkingv1.IngressList
	if err := c.Virtual.List(ctx, &ings, client.InNamespace(v.GetNamespace()), client.MatchingFields{IngressSecretIndex: v.GetName()}, client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
		return false, fmt.Errorf("listing ingresses using %s/%s: %w", v.GetNamespace(), v.GetName(), err)
	}
	return len(ings.Items) > 0, nil
}

// SyncToHost creates the copy.
func (c *Copy[T]) SyncToHost(ctx context.Context, v T) (reconcile.Result, error) {
	h := c.New()
	h.SetName(c.Names.HostName(v.GetNamespace(), v.GetName()))
	c.mark(v, h)
	return reconcile.Result{}, c.CreateHost(ctx, c.Kind, v, h)
}

// Sync keeps the copy's payload, labels and marks the virtual object's.
func (c *Copy[T]) Sync(ctx context.Context, v, h T) (reconcile.Result, error) {
	next := h.DeepCopyObject().(T)
	c.mark(v, next)
	return reconcile.Result{}, c.UpdateHost(ctx, c.Kind, next, h)
}

func (c *Copy[T]) mark(v, h T) {
	h.SetLabels(translate.HostLabels(v.GetLabels()))
	c.Names.Mark(h, translate.Origin{Kind: c.Kind, Namespace: v.GetNamespace(), Name: v.GetName(), UID: string(v.GetUID())})
	c.CopyData(v, h)
}

// SyncToVirtual deletes the copy of a deleted object.
func (c *Copy[T]) SyncToVirtual(ctx context.Context, _ types.NamespacedName, h T) (reconcile.Result, error) {
	return reconcile.Result{}, c.DeleteHost(ctx, c.Kind, h)
}

// ForCopy is the controller of a kind (ConfigMap or Secret) copied while
// it is used, whose copies carry what copyData copies.
func ForCopy[T client.Object](p *Pair, name, kind string, copyData func(v, h T)) *Reconciler[T] {
	c := &Copy[T]{
		Pair: p, Kind: kind, New: NewObject[T], CopyData: copyData,
		PodIndex:     map[string]string{"ConfigMap": PodConfigMapIndex, "Secret": PodSecretIndex}[kind],
		IngressUsers: kind == "Secret" && p.Config.SyncIngresses,
	}
	return For(p, name, kind, Syncer[T](c))
}
