package controller

import (
	"context"

	"github.com/fluxcd/pkg/runtime/conditions"
	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// SetupWithManager registers the Fleet controller. A Fleet is reconciled
// when its spec changes, when warren.dev/requested-at changes, and every
// spec.interval.
func (r *FleetReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Fleet{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, requestedAtChanged{}))).
		Watches(&v1alpha1.HostCluster{}, handler.EnqueueRequestsFromMapFunc(fleetsOfHost(mgr.GetClient())), builder.WithPredicates(hostReadinessChanged{})).
		WithOptions(opts).
		Complete(r)
}

// hostReadinessChanged passes HostCluster changes that can change what a
// Fleet does on it: Ready flipped, or its ranges changed.
type hostReadinessChanged struct{ predicate.Funcs }

func (hostReadinessChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.HostCluster)
	n, ok2 := e.ObjectNew.(*v1alpha1.HostCluster)
	return ok1 && ok2 && (conditions.IsReady(o) != conditions.IsReady(n) ||
		o.Status.ServiceCIDR != n.Status.ServiceCIDR || o.Status.NodePortRange != n.Status.NodePortRange)
}

// SetupWithManager registers the readiness controller: a VirtualCluster is
// looked at again whenever its control plane's StatefulSet changes.
func (r *ReadinessReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("virtualcluster-readiness").
		For(&v1alpha1.VirtualCluster{}).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(clusterOfObject)).
		WithOptions(opts).
		Complete(r)
}

// clusterOfObject maps a host object to the VirtualCluster it belongs to.
func clusterOfObject(_ context.Context, obj client.Object) []reconcile.Request {
	labels := obj.GetLabels()
	if labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || labels[v1alpha1.ClusterLabel] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: labels[v1alpha1.ClusterLabel]}}}
}

// requestedAtChanged lets `warren.dev/requested-at` trigger a reconcile at once.
type requestedAtChanged struct{ predicate.Funcs }

func (requestedAtChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	return e.ObjectOld.GetAnnotations()[v1alpha1.RequestedAtAnnotation] != e.ObjectNew.GetAnnotations()[v1alpha1.RequestedAtAnnotation]
}
