package controller

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// cacheOptions keeps the manager's informer caches to what the controllers
// read, so that they grow with warren's own objects only and hold no more
// of each than is read:
//   - no object keeps its managedFields (the Applier reads those live, never
//     from the cache);
//   - only warren's own StatefulSets and Services, of which the readiness
//     controller reads a StatefulSet's replicas and status (its pod
//     template, the bulk of it, is dropped) and a Service's ports and
//     load-balancer status;
//   - on a shard, only its own Fleets.
func cacheOptions(shard labels.Selector) cache.Options {
	managed := labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue})
	byObject := map[client.Object]cache.ByObject{
		&appsv1.StatefulSet{}: {Label: managed, Transform: readinessOfStatefulSet},
		&corev1.Service{}:     {Label: managed},
	}
	if shard != nil {
		byObject[&v1alpha1.Fleet{}] = cache.ByObject{Label: shard}
	}
	return cache.Options{ByObject: byObject, DefaultTransform: cache.TransformStripManagedFields()}
}

// readinessOfStatefulSet keeps of a StatefulSet what the readiness
// controller reads: its metadata (without managedFields), spec.replicas and
// status.
func readinessOfStatefulSet(obj any) (any, error) {
	sts, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return obj, nil
	}
	slim := &appsv1.StatefulSet{TypeMeta: sts.TypeMeta, ObjectMeta: sts.ObjectMeta, Status: sts.Status}
	slim.ManagedFields = nil
	slim.Spec.Replicas = sts.Spec.Replicas
	return slim, nil
}
