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

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// Syncer reconciles virtual namespaces by name.
type Syncer struct {
	*syncer.Pair
	// Ingresses includes host Ingresses in the sweep (only when synced).
	Ingresses bool
}

// SetupWithManager registers the namespace sweeper.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("namespace").For(&corev1.Namespace{}).Complete(s)
}

// Reconcile sweeps the host once the virtual namespace is gone.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := &corev1.Namespace{}
	err := s.Virtual.Get(ctx, req.NamespacedName, ns)
	if err == nil {
		return reconcile.Result{}, nil
	}
	if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	if gone, err := s.VirtualGone(ctx, req.NamespacedName, &corev1.Namespace{}); !gone {
		return syncer.Requeue(time.Second, err)
	}
	lists := []client.ObjectList{
		&corev1.PodList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.SecretList{},
		&corev1.PersistentVolumeClaimList{}, &discoveryv1.EndpointSliceList{},
	}
	if s.Ingresses {
		lists = append(lists, &networkingv1.IngressList{})
	}
	for _, list := range lists {
		if err := s.sweep(ctx, list, req.Name); err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{}, nil
}

func (s *Syncer) sweep(ctx context.Context, list client.ObjectList, namespace string) error {
	if err := s.Host.List(ctx, list, client.InNamespace(s.Names.HostNamespace),
		client.MatchingLabels{translate.LabelNamespace: namespace}); err != nil {
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
