package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/runtime/conditions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kuberecorder "k8s.io/client-go/tools/record"
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

// SetupWithManager registers the kubeconfig publisher. A Fleet is looked at
// when its spec changes, when warren.dev/requested-at changes, when the
// Fleet controller has reconciled a new revision, when one of its clusters
// becomes Ready, gets an endpoint or goes away, and every spec.interval
// (for renewals and a rotated sealing key). Its own status writes trigger
// nothing.
func (r *KubeconfigReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("kubeconfig-publisher").
		For(&v1alpha1.Fleet{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, requestedAtChanged{}, appliedRevisionChanged{}))).
		Watches(&v1alpha1.VirtualCluster{}, handler.EnqueueRequestsFromMapFunc(fleetOfCluster), builder.WithPredicates(clusterReadinessChanged{})).
		WithOptions(opts).
		Complete(r)
}

// fleetOfCluster maps a VirtualCluster to the Fleet that applied it.
func fleetOfCluster(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if l[v1alpha1.FleetNameLabel] == "" || l[v1alpha1.FleetNamespaceLabel] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: l[v1alpha1.FleetNamespaceLabel], Name: l[v1alpha1.FleetNameLabel]}}}
}

// appliedRevisionChanged passes Fleet updates where the Fleet controller
// recorded a newly attempted or applied revision.
type appliedRevisionChanged struct{ predicate.Funcs }

func (appliedRevisionChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.Fleet)
	n, ok2 := e.ObjectNew.(*v1alpha1.Fleet)
	return ok1 && ok2 && (o.Status.LastAppliedRevision != n.Status.LastAppliedRevision || o.Status.LastAttemptedRevision != n.Status.LastAttemptedRevision)
}

// clusterReadinessChanged passes the VirtualCluster changes that can change
// its kubeconfig: created, deleted, spec changed, Ready flipped, endpoint
// known or changed, deletion started.
type clusterReadinessChanged struct{ predicate.Funcs }

func (clusterReadinessChanged) Create(event.CreateEvent) bool   { return true }
func (clusterReadinessChanged) Delete(event.DeleteEvent) bool   { return true }
func (clusterReadinessChanged) Generic(event.GenericEvent) bool { return false }
func (clusterReadinessChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*v1alpha1.VirtualCluster)
	n, ok2 := e.ObjectNew.(*v1alpha1.VirtualCluster)
	if !ok1 || !ok2 {
		return false
	}
	return o.Generation != n.Generation ||
		conditions.IsReady(o) != conditions.IsReady(n) ||
		o.Status.Endpoint != n.Status.Endpoint ||
		o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
}

// setupKubeconfigPublisher builds and registers the kubeconfig publisher
// for Run; it writes through writer.
func setupKubeconfigPublisher(mgr ctrl.Manager, writer client.Client, restConfig *rest.Config, cfg Config, recorder kuberecorder.EventRecorder, opts controller.Options, hosts *hostRegistry) error {
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return fmt.Errorf("kubeconfig publisher: %w", err)
	}
	publisher := &KubeconfigReconciler{
		Client:        writer,
		APIReader:     mgr.GetAPIReader(),
		Kube:          kube,
		Hosts:         hosts,
		EventRecorder: recorder,
		CacheDir:      cfg.CacheDir,
	}
	return publisher.SetupWithManager(mgr, opts)
}
