// Package volumes syncs PersistentVolumeClaims to the host and brings back
// what the host decided: once the host claim is bound, the virtual claim is
// bound to a virtual PersistentVolume of the same name that describes the
// host volume (the virtual cluster's own volume controller then marks both
// Bound, as it would for any pre-bound pair).
//
// It never reads or writes host PersistentVolumes (they are cluster-scoped),
// never lets a tenant pick a host volume by name, and never touches a host
// claim it did not create.
package volumes

import (
	"context"
	"fmt"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
)

// Kind is the origin kind of synced claims.
const Kind = "PersistentVolumeClaim"

// HostVolumeDriver names, in virtual PersistentVolumes, the fact that the
// data lives in a host volume (the handle is the host volume's name).
const HostVolumeDriver = "host.warren.dev"

// Syncer is the claim kind.
type Syncer struct {
	syncer.Twin[*corev1.PersistentVolumeClaim]
}

var (
	_ syncer.Syncer[*corev1.PersistentVolumeClaim] = &Syncer{}
	_ syncer.VirtualCleaner                        = &Syncer{}
)

// New is the claim controller.
func New(p *syncer.Pair) *syncer.Reconciler[*corev1.PersistentVolumeClaim] {
	return syncer.For(p, "persistentvolumeclaim", Kind, &Syncer{Twin: syncer.Twin[*corev1.PersistentVolumeClaim]{Pair: p, Kind: Kind}})
}

// SyncToHost creates the twin of a claim the platform allows.
func (s *Syncer) SyncToHost(ctx context.Context, v *corev1.PersistentVolumeClaim) (reconcile.Result, error) {
	h, why, err := s.hostClaim(ctx, v)
	return s.CreateOrRefuse(ctx, ReasonRefused, v, h, string(why), err)
}

// Sync carries a resize down and the host's binding up.
func (s *Syncer) Sync(ctx context.Context, v, h *corev1.PersistentVolumeClaim) (reconcile.Result, error) {
	if err := s.updateHost(ctx, v, h); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, s.bindUp(ctx, v, h)
}

func (s *Syncer) hostClaim(ctx context.Context, v *corev1.PersistentVolumeClaim) (*corev1.PersistentVolumeClaim, refusal, error) {
	spec, why, err := s.hostSpec(ctx, v)
	if err != nil || why != "" {
		return nil, why, err
	}
	h := &corev1.PersistentVolumeClaim{Spec: spec}
	h.Name = s.Names.HostName(v.Namespace, v.Name)
	h.Labels = translate.HostLabels(v.Labels)
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	return h, "", nil
}

// updateHost carries over a resize request and label changes.
func (s *Syncer) updateHost(ctx context.Context, v, h *corev1.PersistentVolumeClaim) error {
	next := h.DeepCopy()
	next.Labels = translate.HostLabels(v.Labels)
	s.Names.Mark(next, translate.Origin{Kind: Kind, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	next.Spec.Resources.Requests = v.Spec.Resources.Requests
	return s.PatchHost(ctx, Kind, next, h)
}

// bindUp binds the virtual claim to a virtual volume describing the host
// volume, once the host claim is bound.
func (s *Syncer) bindUp(ctx context.Context, v, h *corev1.PersistentVolumeClaim) error {
	volume := h.Spec.VolumeName
	if h.Status.Phase != corev1.ClaimBound || volume == "" || v.Spec.VolumeName != "" {
		return nil
	}
	pv := &corev1.PersistentVolume{}
	pv.Name = volume
	pv.Labels = map[string]string{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue, v1alpha1.SyncerNamespaceLabel: v.Namespace}
	pv.Annotations = map[string]string{v1alpha1.OriginNamespaceAnnotation: v.Namespace, v1alpha1.OriginNameAnnotation: v.Name}
	pv.Spec = corev1.PersistentVolumeSpec{
		Capacity:                      h.Status.Capacity,
		AccessModes:                   h.Status.AccessModes,
		VolumeMode:                    h.Spec.VolumeMode,
		StorageClassName:              ptrValue(v.Spec.StorageClassName),
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
		ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: v.Namespace, Name: v.Name, UID: v.UID},
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
			Driver: HostVolumeDriver, VolumeHandle: volume,
		}},
	}
	if err := s.Virtual.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating virtual volume %s: %w", volume, err)
	}
	next := v.DeepCopy()
	next.Spec.VolumeName = volume
	if err := s.Virtual.Patch(ctx, next, client.MergeFrom(v)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("binding virtual claim %s/%s to %s: %w", v.Namespace, v.Name, volume, err)
	}
	return nil
}

// CleanupVirtual deletes the virtual volumes made for a deleted claim.
func (s *Syncer) CleanupVirtual(ctx context.Context, claim types.NamespacedName) error {
	var pvs corev1.PersistentVolumeList
	if err := s.Virtual.List(ctx, &pvs, client.MatchingLabels{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue, v1alpha1.SyncerNamespaceLabel: claim.Namespace}); err != nil {
		return fmt.Errorf("listing virtual volumes: %w", err)
	}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if ref := pv.Spec.ClaimRef; ref != nil && ref.Namespace == claim.Namespace && ref.Name == claim.Name {
			if err := s.Virtual.Delete(ctx, pv); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting virtual volume %s: %w", pv.Name, err)
			}
		}
	}
	return nil
}

func ptrValue(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
