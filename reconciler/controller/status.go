package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// clusterStatusWriter is the one way warren's controllers write a
// VirtualCluster's status: read it, let change edit it, and patch it only
// when the status changed, with an optimistic lock, retrying on conflict with
// the other writers (each controller owns different conditions).
type clusterStatusWriter struct {
	client client.Client
	// fresh, when set, is read when the cache does not have the cluster yet
	// (it was created in this reconcile); without it such a cluster is
	// skipped.
	fresh client.Reader
	// changed, when set, is called with the status before and after a
	// change that is about to be written (for events).
	changed func(before, after *v1alpha1.VirtualCluster)
}

// write applies change to the named VirtualCluster's status; a cluster that
// does not exist is no error.
func (w clusterStatusWriter) write(ctx context.Context, name string, change func(*v1alpha1.VirtualCluster) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var vc v1alpha1.VirtualCluster
		err := w.client.Get(ctx, client.ObjectKey{Name: name}, &vc)
		if apierrors.IsNotFound(err) && w.fresh != nil {
			err = w.fresh.Get(ctx, client.ObjectKey{Name: name}, &vc)
		}
		if err != nil {
			return client.IgnoreNotFound(err)
		}
		before := vc.DeepCopy()
		if err := change(&vc); err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(before.Status, vc.Status) {
			return nil
		}
		if w.changed != nil {
			w.changed(before, &vc)
		}
		return w.client.Status().Patch(ctx, &vc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}
