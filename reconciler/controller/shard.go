package controller

import (
	"context"
	"errors"
	"fmt"

	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// Sharding, Flux's way: a reconciler started with --watch-label-selector
// caches, and so reconciles, only the Fleets its selector matches
// (sharding.fluxcd.io/key=<shard>), elects its leader on a Lease of its own
// shard, and names its shard in its user agent and in each Fleet's
// status.shard. A Fleet whose label moves it to another shard leaves this
// shard's cache; a pass already running drops it before it would prune or
// finalize (stillOurs), and the shard it moved to adopts it as it is.

// errMovedShard stops a pass over a Fleet that another shard now reconciles.
var errMovedShard = errors.New("the Fleet moved to another shard")

// shardSelector parses --watch-label-selector; nil when every Fleet is watched.
func shardSelector(cfg Config) (labels.Selector, error) {
	if cfg.WatchLabelSelector == "" {
		return nil, nil
	}
	sel, err := fluxcontroller.GetWatchSelector(fluxcontroller.WatchOptions{LabelSelector: cfg.WatchLabelSelector})
	if err != nil {
		return nil, fmt.Errorf("--watch-label-selector %q: %w", cfg.WatchLabelSelector, err)
	}
	return sel, nil
}

// userAgent names the reconciler, and its shard, in every request it makes
// (the API server's audit log shows which shard did what).
func userAgent(cfg Config) string {
	ua := ControllerName + "/" + cfg.Version
	if cfg.WatchLabelSelector != "" {
		ua += " (shard " + cfg.WatchLabelSelector + ")"
	}
	return ua
}

// leaseName is the Lease the replicas of one shard elect their leader on:
// shards never share one, as Flux's controllers do it.
func leaseName(cfg Config) string {
	if cfg.WatchLabelSelector == "" {
		return leaderElectionID
	}
	return leaderelection.GenerateID(leaderElectionID, cfg.WatchLabelSelector)
}

// stillOurs, on a sharded reconciler, reads the Fleet's labels from the API
// server and returns errMovedShard once they no longer match this shard:
// checked before anything is pruned and before a deleted Fleet is
// finalized, so a Fleet moved mid-pass is never pruned by the shard it left.
func (r *FleetReconciler) stillOurs(ctx context.Context, fleet *v1alpha1.Fleet) error {
	if r.Shard == nil {
		return nil
	}
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(v1alpha1.FleetKind))
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(fleet), live); err != nil {
		if apierrors.IsNotFound(err) {
			return errMovedShard
		}
		return fmt.Errorf("reading Fleet %s/%s's labels: %w", fleet.Namespace, fleet.Name, err)
	}
	if !r.Shard.Matches(labels.Set(live.Labels)) {
		return fmt.Errorf("%w: its labels no longer match %s", errMovedShard, r.Shard)
	}
	return nil
}

// ofThisShard says whether the VirtualCluster belongs to a Fleet this
// reconciler reconciles: on a sharded reconciler, one in its Fleet cache.
func (r *ReadinessReconciler) ofThisShard(ctx context.Context, name string) (bool, error) {
	if r.Shard == nil {
		return true, nil
	}
	var vc v1alpha1.VirtualCluster
	if err := r.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	l := vc.GetLabels()
	var fleet v1alpha1.Fleet
	err := r.Get(ctx, client.ObjectKey{Namespace: l[v1alpha1.FleetNamespaceLabel], Name: l[v1alpha1.FleetNameLabel]}, &fleet)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// shardName is what status.shard says of this reconciler.
func (r *FleetReconciler) shardName() string {
	if r.Shard == nil {
		return ""
	}
	return r.Shard.String()
}

// movedShard returns why the pass must not write the Fleet's status, if
// the Fleet moved to another shard: the pass found it out (err), or the
// Fleet's labels, read now, say so. A failed read lets the status through.
func (r *FleetReconciler) movedShard(ctx context.Context, fleet *v1alpha1.Fleet, err error) error {
	if errors.Is(err, errMovedShard) {
		return err
	}
	if ours := r.stillOurs(ctx, fleet); errors.Is(ours, errMovedShard) {
		return ours
	}
	return nil
}
