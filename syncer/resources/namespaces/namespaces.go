// Package namespaces removes, when a virtual namespace is deleted, every host
// object that came from it: the per-kind syncers remove twins one by one as
// the virtual namespace controller deletes objects, and this sweep catches
// whatever is left once the namespace is gone.
//
// It only ever deletes host objects that carry this cluster's ownership
// marks for that namespace.
package namespaces

import (
	"context"
	"fmt"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
)

// Syncer is the namespace kind: a virtual namespace has no host twin (its
// objects have theirs, kind by kind); when it is gone, the host objects
// that came from it go.
type Syncer struct {
	*syncer.Pair
	// Ingresses includes host Ingresses in the sweep (only when synced).
	Ingresses bool
}

var _ syncer.Syncer[*corev1.Namespace] = &Syncer{}

// SetupWithManager registers the namespace sweeper.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("namespace").For(&corev1.Namespace{}).Complete(s)
}

// Reconcile sweeps the host once the virtual namespace is gone, confirmed
// by a live read.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	switch err := s.Virtual.Get(ctx, req.NamespacedName, ns); {
	case err == nil:
		return s.SyncToHost(ctx, ns)
	case !apierrors.IsNotFound(err):
		return reconcile.Result{}, err
	}
	if gone, err := s.VirtualGone(ctx, req.NamespacedName, &corev1.Namespace{}); !gone {
		return syncer.Requeue(time.Second, err)
	}
	return s.SyncToVirtual(ctx, req.NamespacedName, nil)
}

// SyncToHost: a namespace that exists has nothing of its own on the host.
func (s *Syncer) SyncToHost(context.Context, *corev1.Namespace) (reconcile.Result, error) {
	return reconcile.Result{}, nil
}

// Sync: as SyncToHost.
func (s *Syncer) Sync(ctx context.Context, v, _ *corev1.Namespace) (reconcile.Result, error) {
	return s.SyncToHost(ctx, v)
}

// SyncToVirtual sweeps what is left on the host of the namespace key, gone
// from the virtual cluster: every host object this cluster marked as
// coming from it.
func (s *Syncer) SyncToVirtual(ctx context.Context, key types.NamespacedName, _ *corev1.Namespace) (reconcile.Result, error) {
	lists := []client.ObjectList{
		&corev1.PodList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.SecretList{},
		&corev1.PersistentVolumeClaimList{}, &discoveryv1.EndpointSliceList{},
	}
	if s.Ingresses {
		lists = append(lists, &networkingv1.IngressList{})
	}
	for _, list := range lists {
		if err := s.sweep(ctx, list, key.Name); err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

func (s *Syncer) sweep(ctx context.Context, list client.ObjectList, namespace string) error {
	if err := s.Host.List(ctx, list, client.InNamespace(s.Names.HostNamespace),
		client.MatchingLabels{v1alpha1.SyncerNamespaceLabel: namespace}); err != nil {
		return fmt.Errorf("listing host objects of namespace %s: %w", namespace, err)
	}
	return meta.EachListItem(list, func(o runtime.Object) error {
		obj := o.(client.Object)
		origin, ok := s.Names.OriginOf(obj)
		if !ok || origin.Namespace != namespace {
			return nil
		}
		return s.DeleteHost(ctx, origin.Kind, obj)
	})
}
