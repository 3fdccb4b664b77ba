// Package storageclasses mirrors the host's StorageClasses into the virtual
// cluster (only with --sync-storage-classes), so tenants see which classes
// their claims may name, and the host's default class is their default too.
// The copies are read-only in effect: a tenant's change to one is reverted,
// and a copy goes when its host class goes. Without the flag it removes the
// copies an earlier run left, and reads nothing on the host.
//
// It never writes a host StorageClass, and never changes or deletes a
// virtual StorageClass it did not create, even one named like a host class.
package storageclasses

import (
	"context"
	"fmt"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// The annotations that make a class the default; the beta key is still
// honoured by Kubernetes, so a host that uses it is mirrored with it.
const (
	DefaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// ReasonNotMirrored is the event on a tenant's own class that keeps a host
// class of the same name from being mirrored.
const ReasonNotMirrored = "HostClassNotMirrored"

// Syncer reconciles one class name at a time, on both sides. It is a kind
// like the others, mirrored the other way: the host class is the source,
// the virtual copy (same name, marked as the syncer's) the twin, so it reads
// both itself and calls its own three sync calls.
type Syncer struct {
	*syncer.Pair
}

var _ syncer.Syncer[*storagev1.StorageClass] = &Syncer{}

// SetupWithManager registers the mirror. The host side is watched through
// the host cache, which holds the host's StorageClasses only when the flag
// is on (see package syncer).
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("storageclass").
		For(&storagev1.StorageClass{}).
		WatchesRawSource(source.Kind(s.HostCluster.GetCache(), &storagev1.StorageClass{}, &handler.TypedEnqueueRequestForObject[*storagev1.StorageClass]{})).
		Complete(s)
}

// Mirrored reports whether a virtual class is the syncer's copy of a host class.
func Mirrored(v *storagev1.StorageClass) bool {
	return v.Labels[v1alpha1.SyncerManagedByLabel] == v1alpha1.SyncerManagedByValue
}

// Mirror is the virtual copy of host: its spec, its labels (except keys
// under warren.dev/, which are warren's own) and its default-class
// annotations, marked as the syncer's. Other host annotations (tooling's
// bookkeeping such as kubectl's last-applied-configuration) stay on the host.
func Mirror(host *storagev1.StorageClass) *storagev1.StorageClass {
	m := host.DeepCopy()
	m.ObjectMeta = metav1.ObjectMeta{Name: host.Name, Labels: translate.HostLabels(host.Labels)}
	m.Labels[v1alpha1.SyncerManagedByLabel] = v1alpha1.SyncerManagedByValue
	for _, k := range []string{DefaultClassAnnotation, betaDefaultClassAnnotation} {
		if v, ok := host.Annotations[k]; ok {
			if m.Annotations == nil {
				m.Annotations = map[string]string{}
			}
			m.Annotations[k] = v
		}
	}
	return m
}

// Reconcile makes the virtual class of this name the host's copy, unless
// the tenant made their own.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	host, err := get(ctx, s.Host, req.Name)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading host storage class %s: %w", req.Name, err)
	}
	v, err := get(ctx, s.Virtual, req.Name)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading virtual storage class %s: %w", req.Name, err)
	}
	if v != nil && !Mirrored(v) {
		if host != nil {
			s.notMirrored(ctx, v)
		}
		return reconcile.Result{}, nil
	}
	return syncer.Dispatch(ctx, syncer.Syncer[*storagev1.StorageClass](s), req.NamespacedName, v, v != nil, host, host != nil)
}

// SyncToHost: a copy whose host class is gone (confirmed live) goes; the
// syncer never writes host classes.
func (s *Syncer) SyncToHost(ctx context.Context, v *storagev1.StorageClass) (reconcile.Result, error) {
	return s.remove(ctx, v)
}

// SyncToVirtual makes the copy of a host class.
func (s *Syncer) SyncToVirtual(ctx context.Context, _ types.NamespacedName, host *storagev1.StorageClass) (reconcile.Result, error) {
	return reconcile.Result{}, s.create(ctx, Mirror(host))
}

// Sync puts the host's settings back on the copy, recreating it when an
// immutable one changed.
func (s *Syncer) Sync(ctx context.Context, v, host *storagev1.StorageClass) (reconcile.Result, error) {
	want := Mirror(host)
	if !sameImmutable(v, want) {
		return reconcile.Result{}, s.recreate(ctx, v, want)
	}
	return reconcile.Result{}, s.update(ctx, v, want)
}

// get reads the class name; nil when there is none.
func get(ctx context.Context, c client.Reader, name string) (*storagev1.StorageClass, error) {
	sc := &storagev1.StorageClass{}
	if err := c.Get(ctx, types.NamespacedName{Name: name}, sc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return sc, nil
}

// notMirrored says, to the tenant on their class and to the platform team
// in the log, that a host class is hidden by a class the tenant made.
func (s *Syncer) notMirrored(ctx context.Context, v *storagev1.StorageClass) {
	ctrl.LoggerFrom(ctx).Info("host storage class not mirrored: the virtual cluster has its own class of that name", "storageClass", v.Name)
	s.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonNotMirrored, "Sync",
		"the host's StorageClass %q is not mirrored: this class was made in the virtual cluster and is left as it is; claims that name it are still provisioned on the host by the host's class of that name", v.Name)
}

// remove deletes the copy of a host class that is gone. The host cache
// saying so is confirmed with a live read first, so a lagging cache never
// takes a class away from the tenant.
func (s *Syncer) remove(ctx context.Context, v *storagev1.StorageClass) (reconcile.Result, error) {
	host, err := get(ctx, s.HostReader, v.Name)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("confirming host storage class %s is gone: %w", v.Name, err)
	}
	if host != nil {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return reconcile.Result{}, deleteCopy(ctx, s.Virtual, v)
}

// deleteCopy deletes a copy, first dropping any finalizer a tenant added
// (it would keep the copy forever: nothing of warren's finalizes classes).
func deleteCopy(ctx context.Context, c client.Client, v *storagev1.StorageClass) error {
	if len(v.Finalizers) > 0 {
		next := v.DeepCopy()
		next.Finalizers = nil
		if err := c.Update(ctx, next); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("dropping finalizers of virtual storage class %s: %w", v.Name, err)
		}
	}
	uid := v.UID
	err := c.Delete(ctx, v, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting virtual storage class %s: %w", v.Name, err)
	}
	return nil
}

// create makes the copy. A class that appeared meanwhile is left to the
// reconcile its own event brings.
func (s *Syncer) create(ctx context.Context, want *storagev1.StorageClass) error {
	if err := s.Virtual.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating virtual storage class %s: %w", want.Name, err)
	}
	return nil
}

// sameImmutable compares what the API refuses to change in a StorageClass:
// provisioner, parameters, reclaimPolicy and volumeBindingMode.
func sameImmutable(a, b *storagev1.StorageClass) bool {
	return a.Provisioner == b.Provisioner &&
		equality.Semantic.DeepEqual(a.Parameters, b.Parameters) &&
		equality.Semantic.DeepEqual(a.ReclaimPolicy, b.ReclaimPolicy) &&
		equality.Semantic.DeepEqual(a.VolumeBindingMode, b.VolumeBindingMode)
}

// recreate replaces a copy whose immutable fields no longer match the host
// (a host class deleted and made again under the same name, or a copy the
// tenant replaced). Claims name classes, not objects, so none is affected.
func (s *Syncer) recreate(ctx context.Context, v, want *storagev1.StorageClass) error {
	ctrl.LoggerFrom(ctx).Info("recreating virtual storage class: its provisioner, parameters, reclaim policy or binding mode changed on the host", "storageClass", v.Name)
	if err := deleteCopy(ctx, s.Virtual, v); err != nil {
		return err
	}
	return s.create(ctx, want)
}

// update puts back what may change in place: labels, annotations (the
// default-class one among them), finalizers and owners, mount options,
// volume expansion and allowed topologies.
func (s *Syncer) update(ctx context.Context, v, want *storagev1.StorageClass) error {
	next := v.DeepCopy()
	next.Labels, next.Annotations = want.Labels, want.Annotations
	next.Finalizers, next.OwnerReferences = nil, nil
	next.MountOptions = want.MountOptions
	next.AllowVolumeExpansion = want.AllowVolumeExpansion
	next.AllowedTopologies = want.AllowedTopologies
	if equality.Semantic.DeepEqual(next, v) {
		return nil
	}
	// A conflict or a vanished class means a newer event is on its way.
	if err := s.Virtual.Update(ctx, next); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reverting virtual storage class %s to the host's: %w", v.Name, err)
	}
	return nil
}

// Remover deletes the copies of host classes when the syncer runs without
// --sync-storage-classes: nothing would keep them in step with the host,
// and the flag may have been turned off since they were made. It reads
// only the virtual cluster.
type Remover struct {
	Virtual       client.Client
	VirtualReader client.Reader
	Log           logr.Logger
	Interval      time.Duration // between attempts while the virtual API fails; default 5s
}

// NeedLeaderElection: only the leader writes.
func (r *Remover) NeedLeaderElection() bool { return true }

// Start removes the copies once, trying again until it succeeds or ctx ends.
func (r *Remover) Start(ctx context.Context) error {
	interval := r.Interval
	if interval == 0 {
		interval = 5 * time.Second
	}
	for {
		err := r.Remove(ctx)
		if err == nil {
			return nil
		}
		r.Log.Error(err, "removing mirrored storage classes")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Remove deletes every virtual class marked as a copy, live from the
// virtual API (the cache of classes is never started without the flag).
func (r *Remover) Remove(ctx context.Context) error {
	var list storagev1.StorageClassList
	if err := r.VirtualReader.List(ctx, &list, client.MatchingLabels{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}); err != nil {
		return fmt.Errorf("listing virtual storage classes: %w", err)
	}
	for i := range list.Items {
		v := &list.Items[i]
		if err := deleteCopy(ctx, r.Virtual, v); err != nil {
			return err
		}
		r.Log.Info("removed a mirrored storage class: --sync-storage-classes is off", "storageClass", v.Name)
	}
	return nil
}
