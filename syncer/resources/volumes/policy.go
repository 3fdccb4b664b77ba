package volumes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer"
)

// ReasonRefused is the event on a virtual claim that does not reach the host.
const ReasonRefused = "ClaimRefused"

// defaultClassAnnotations make a StorageClass the default.
var defaultClassAnnotations = []string{"storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"}

// refusal is a claim field the platform does not allow, in words a tenant
// reads on the claim.
type refusal string

// hostSpec is the host claim's spec for the virtual claim v, or why there
// is none. Every field that can pick a host volume or claim is decided
// here: the class (--storage-classes), static binding (storageClassName "",
// volumeName, selector: only with --allow-static-binding) and the data
// source (only this namespace's own claims, checked against their twins).
// Nothing else of the tenant's spec is copied (volumeAttributesClassName
// names a host object and is left out).
func (s *Syncer) hostSpec(ctx context.Context, v *corev1.PersistentVolumeClaim) (corev1.PersistentVolumeClaimSpec, refusal, error) {
	w := s.Config.Workloads
	h := corev1.PersistentVolumeClaimSpec{AccessModes: v.Spec.AccessModes, Resources: v.Spec.Resources, VolumeMode: v.Spec.VolumeMode}
	if name := v.Spec.VolumeName; name != "" {
		switch ours, err := s.madeByTheSyncer(ctx, name); {
		case err != nil:
			return h, "", err
		case w.AllowStaticBinding:
			h.VolumeName = name
		case !ours:
			return h, "spec.volumeName: binding a chosen host volume is not allowed for this cluster (--allow-static-binding)", nil
		}
	}
	if v.Spec.Selector != nil {
		if !w.AllowStaticBinding {
			return h, "spec.selector: choosing host volumes by label is not allowed for this cluster (--allow-static-binding)", nil
		}
		h.Selector = v.Spec.Selector.DeepCopy()
	}
	class, why, err := s.hostClass(ctx, v.Spec.StorageClassName)
	if err != nil || why != "" {
		return h, why, err
	}
	h.StorageClassName = class
	src, why, err := s.dataSource(ctx, v)
	if err != nil || why != "" {
		return h, why, err
	}
	if src != nil {
		h.DataSource = src
		h.DataSourceRef = &corev1.TypedObjectReference{Kind: src.Kind, Name: src.Name}
	}
	return h, "", nil
}

// hostClass is the host claim's class: none (the host default) for a claim
// naming none; a class in --storage-classes, or the host's default, as it
// is; "" (static binding) only with --allow-static-binding. Any other class
// is refused when the host's classes are mirrored (the tenant sees them and
// chose one it may not use) and otherwise becomes the host default (the
// virtual cluster's own classes mean nothing on the host).
func (s *Syncer) hostClass(ctx context.Context, class *string) (*string, refusal, error) {
	w := s.Config.Workloads
	switch {
	case class == nil:
		return nil, "", nil
	case *class == "":
		if !w.AllowStaticBinding {
			return nil, `spec.storageClassName: "" (binding an existing host volume) is not allowed for this cluster (--allow-static-binding)`, nil
		}
		return class, "", nil
	case slices.Contains(w.StorageClasses, *class):
		return class, "", nil
	case !s.Config.SyncStorageClasses:
		return nil, "", nil
	}
	def, err := s.hostDefaultClass(ctx)
	if err != nil {
		return nil, "", err
	}
	if def == *class {
		return class, "", nil
	}
	allowed := "only the host's default class"
	if len(w.StorageClasses) > 0 {
		allowed = "the host's default class and " + strings.Join(w.StorageClasses, ", ")
	}
	return nil, refusal(fmt.Sprintf("spec.storageClassName: %q is not a class this cluster may use (%s)", *class, allowed)), nil
}

// hostDefaultClass is the name of the host's default StorageClass, read
// from the host cache (which holds the host's classes when they are
// mirrored), or "".
func (s *Syncer) hostDefaultClass(ctx context.Context) (string, error) {
	var classes storagev1.StorageClassList
	if err := s.Host.List(ctx, &classes); err != nil {
		return "", fmt.Errorf("listing host storage classes: %w", err)
	}
	for _, c := range classes.Items {
		for _, a := range defaultClassAnnotations {
			if c.Annotations[a] == "true" {
				return c.Name, nil
			}
		}
	}
	return "", nil
}

// dataSource translates a clone source: only a claim of the same virtual
// namespace, checked against its host twin's origin. Snapshots, populators
// and other namespaces' claims are refused.
func (s *Syncer) dataSource(ctx context.Context, v *corev1.PersistentVolumeClaim) (*corev1.TypedLocalObjectReference, refusal, error) {
	var group *string
	var kind, name, field string
	switch {
	case v.Spec.DataSourceRef != nil:
		r := v.Spec.DataSourceRef
		if r.Namespace != nil && *r.Namespace != "" && *r.Namespace != v.Namespace {
			return nil, "spec.dataSourceRef.namespace: a claim may only be made from claims of its own namespace", nil
		}
		group, kind, name, field = r.APIGroup, r.Kind, r.Name, "spec.dataSourceRef"
	case v.Spec.DataSource != nil:
		r := v.Spec.DataSource
		group, kind, name, field = r.APIGroup, r.Kind, r.Name, "spec.dataSource"
	default:
		return nil, "", nil
	}
	if kind != Kind || (group != nil && *group != "") {
		return nil, refusal(field + ": only a PersistentVolumeClaim of the same namespace can be a data source in a virtual cluster"), nil
	}
	hostName, err := s.HostRef(ctx, syncer.Ref{Kind: Kind, Namespace: v.Namespace, Name: name, Field: field})
	if why := syncer.RefReason(err); why != "" {
		return nil, refusal(why), nil
	}
	if err != nil {
		return nil, "", err
	}
	return &corev1.TypedLocalObjectReference{Kind: Kind, Name: hostName}, "", nil
}

// madeByTheSyncer reports whether a virtual claim's volumeName is the
// virtual volume the syncer made when it bound the claim to its host twin's
// volume (so a claim whose twin is gone is made again without it).
func (s *Syncer) madeByTheSyncer(ctx context.Context, volume string) (bool, error) {
	pv := &corev1.PersistentVolume{}
	if err := s.Virtual.Get(ctx, types.NamespacedName{Name: volume}, pv); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return pv.Spec.CSI != nil && pv.Spec.CSI.Driver == HostVolumeDriver, nil
}
