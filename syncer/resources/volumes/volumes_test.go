package volumes

import (
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestClaimsGoDownAndTheirBindingComesUp(t *testing.T) {
	size := func(s string) corev1.VolumeResourceRequirements {
		return corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(s)}}
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "shop", UID: "u-data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, Resources: size("1Gi"),
			StorageClassName: ptr.To("fast"), VolumeName: "",
			DataSource: &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "seed"},
		},
	}
	hostClaim := func(v *corev1.PersistentVolumeClaim) *corev1.PersistentVolumeClaim {
		return synctest.Twin(Kind, v, &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: v.Spec.AccessModes, Resources: v.Spec.Resources,
			DataSource:    &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: synctest.Names.HostName("shop", "seed")},
			DataSourceRef: &corev1.TypedObjectReference{Kind: "PersistentVolumeClaim", Name: synctest.Names.HostName("shop", "seed")},
		}})
	}
	resized := claim.DeepCopy()
	resized.Spec.Resources = size("2Gi")
	bound := hostClaim(claim)
	bound.Spec.VolumeName = "pv-123"
	bound.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes: claim.Spec.AccessModes}
	boundVirtual := claim.DeepCopy()
	boundVirtual.Spec.VolumeName = "pv-123"
	volume := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-123",
			Labels:      map[string]string{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue, v1alpha1.SyncerNamespaceLabel: "shop"},
			Annotations: map[string]string{v1alpha1.OriginNamespaceAnnotation: "shop", v1alpha1.OriginNameAnnotation: "data"}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity: bound.Status.Capacity, AccessModes: claim.Spec.AccessModes, StorageClassName: "fast",
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: "shop", Name: "data", UID: "u-data"},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: HostVolumeDriver, VolumeHandle: "pv-123"}},
		},
	}
	static := claim.DeepCopy()
	static.Spec.VolumeName = "someone-elses-volume"
	key := types.NamespacedName{Namespace: "shop", Name: "data"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name:           "a claim goes down without its class (not mirrored) and with its clone source renamed",
		InitialVirtual: []client.Object{claim}, Request: key,
		ExpectedVirtual: []client.Object{claim},
		ExpectedHost:    []client.Object{hostClaim(claim)},
	}, {
		Name:           "a resize goes down",
		InitialVirtual: []client.Object{resized}, InitialHost: []client.Object{hostClaim(claim)}, Request: key,
		ExpectedVirtual: []client.Object{resized},
		ExpectedHost:    []client.Object{hostClaim(resized)},
	}, {
		Name:           "the host's binding comes up as a virtual volume",
		InitialVirtual: []client.Object{claim}, InitialHost: []client.Object{bound}, Request: key,
		ExpectedVirtual: []client.Object{boundVirtual, volume},
		ExpectedHost:    []client.Object{bound},
	}, {
		Name:           "a claim naming a host volume is refused without --allow-static-binding",
		InitialVirtual: []client.Object{static}, Request: key,
		ExpectedVirtual: []client.Object{static},
		ExpectedHost:    []client.Object{},
		Events:          []string{ReasonRefused, "spec.volumeName"},
	}, {
		Name:           "a deleted claim takes its twin and its virtual volume",
		InitialVirtual: []client.Object{volume}, InitialHost: []client.Object{bound}, Request: key,
	}})
}
