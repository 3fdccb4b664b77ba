package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/resources/storageclasses"
)

// kwokDefaultClass is the host plane's default StorageClass (test/localkube).
const kwokDefaultClass = "kwok-volume"

// platformClass is a class a platform team might offer on the host.
func platformClass(name string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name, Labels: map[string]string{"speed": "fast"}},
		Provisioner:          "csi.example.com",
		Parameters:           map[string]string{"type": "ssd"},
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(true),
		MountOptions:         []string{"noatime"},
		AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{
			{Key: corev1.LabelTopologyZone, Values: []string{"zone-a"}},
		}}},
	}
}

// removeHostClass deletes a host class a story made, whatever became of it.
func removeHostClass(t *testing.T, name string) {
	t.Cleanup(func() {
		_ = w.hostC.Delete(context.Background(), &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
}

// mirrors reports whether the virtual class v is the copy of host: the same
// settings and default-class annotation, the host's labels, warren's mark.
func mirrors(v, host *storagev1.StorageClass) (bool, string) {
	same := v.Provisioner == host.Provisioner &&
		equality.Semantic.DeepEqual(v.Parameters, host.Parameters) &&
		equality.Semantic.DeepEqual(v.ReclaimPolicy, host.ReclaimPolicy) &&
		equality.Semantic.DeepEqual(v.VolumeBindingMode, host.VolumeBindingMode) &&
		equality.Semantic.DeepEqual(v.AllowVolumeExpansion, host.AllowVolumeExpansion) &&
		equality.Semantic.DeepEqual(v.MountOptions, host.MountOptions) &&
		equality.Semantic.DeepEqual(v.AllowedTopologies, host.AllowedTopologies) &&
		v.Annotations[storageclasses.DefaultClassAnnotation] == host.Annotations[storageclasses.DefaultClassAnnotation] &&
		v.Labels[v1alpha1.SyncerManagedByLabel] == v1alpha1.SyncerManagedByValue
	for k, val := range host.Labels {
		same = same && v.Labels[k] == val
	}
	return same, fmt.Sprintf("virtual %s: labels %v annotations %v provisioner %s parameters %v reclaim %v binding %v expansion %v mount %v topologies %v",
		v.Name, v.Labels, v.Annotations, v.Provisioner, v.Parameters, ptr.Deref(v.ReclaimPolicy, ""), ptr.Deref(v.VolumeBindingMode, ""),
		ptr.Deref(v.AllowVolumeExpansion, false), v.MountOptions, v.AllowedTopologies)
}

// waitMirrored waits until the virtual cluster holds the copy of the host
// class name, and returns it.
func waitMirrored(t *testing.T, c client.Client, name, what string) *storagev1.StorageClass {
	t.Helper()
	ctx := t.Context()
	v := &storagev1.StorageClass{}
	testkit.Eventually(t, 30*time.Second, what, func() (bool, string) {
		host := &storagev1.StorageClass{}
		if err := w.hostC.Get(ctx, client.ObjectKey{Name: name}, host); err != nil {
			return false, "host: " + err.Error()
		}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, v); err != nil {
			return false, "virtual: " + err.Error()
		}
		return mirrors(v, host)
	})
	return v
}

// With sync.storageClasses a tenant sees the host's StorageClasses, the
// host's default is theirs, and the copies follow the host: what the host
// changes or removes changes or goes in the virtual cluster, and what the
// tenant changes is put back.
func TestHostStorageClassesAreMirrored(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "classes")

	def := waitMirrored(t, w.virtualC, kwokDefaultClass, "the host's default class in the virtual cluster")
	if def.Annotations[storageclasses.DefaultClassAnnotation] != "true" {
		t.Fatalf("the copy of the host's default class is not the default: annotations %v", def.Annotations)
	}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
	create(t, ctx, w.virtualC, claim)
	if got := ptr.Deref(claim.Spec.StorageClassName, ""); got != kwokDefaultClass {
		t.Errorf("a claim without a class got class %q in the virtual cluster, want the host's default %q", got, kwokDefaultClass)
	}

	name := unique("e2e-fast")
	removeHostClass(t, name)
	create(t, ctx, w.hostC, platformClass(name))
	v := waitMirrored(t, w.virtualC, name, "a new host class in the virtual cluster")

	// The tenant edits the copy: made default, expansion off, a label added.
	v.Annotations = map[string]string{storageclasses.DefaultClassAnnotation: "true"}
	v.AllowVolumeExpansion = ptr.To(false)
	v.Labels["tenant"] = "edit"
	if err := w.virtualC.Update(ctx, v); err != nil {
		t.Fatalf("a tenant's edit of the copy: %v", err)
	}
	v = waitMirrored(t, w.virtualC, name, "the tenant's edit reverted")
	if v.Labels["tenant"] != "" || v.Annotations[storageclasses.DefaultClassAnnotation] != "" {
		t.Errorf("the tenant's label or default annotation stayed: labels %v annotations %v", v.Labels, v.Annotations)
	}

	// The tenant deletes the copy.
	deleted := v.UID
	if err := w.virtualC.Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the deleted copy made again", func() (bool, string) {
		err := w.virtualC.Get(ctx, client.ObjectKey{Name: name}, v)
		return err == nil && v.UID != deleted, fmt.Sprint("the deleted copy or none: ", err)
	})
	waitMirrored(t, w.virtualC, name, "the new copy")

	// The host changes what can change in place.
	h := &storagev1.StorageClass{}
	if err := w.hostC.Get(ctx, client.ObjectKey{Name: name}, h); err != nil {
		t.Fatal(err)
	}
	h.AllowVolumeExpansion = ptr.To(false)
	h.MountOptions = []string{"noatime", "nodiratime"}
	h.Labels["speed"] = "faster"
	if err := w.hostC.Update(ctx, h); err != nil {
		t.Fatal(err)
	}
	waitMirrored(t, w.virtualC, name, "the host's edit carried over")

	// The host's class is made again with other parameters, which a
	// StorageClass cannot change in place.
	if err := w.hostC.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	remade := platformClass(name)
	remade.Parameters = map[string]string{"type": "nvme"}
	remade.Provisioner = "csi2.example.com"
	create(t, ctx, w.hostC, remade)
	v = waitMirrored(t, w.virtualC, name, "the remade host class carried over")
	if v.Parameters["type"] != "nvme" {
		t.Errorf("parameters %v", v.Parameters)
	}

	// The host removes the class.
	if err := w.hostC.Delete(ctx, remade); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the copy removed with the host class", func() (bool, string) {
		err := w.virtualC.Get(ctx, client.ObjectKey{Name: name}, &storagev1.StorageClass{})
		return isNotFound(err), fmt.Sprint(err)
	})
}

// A class the tenant made keeps its name even when the host has a class of
// that name: it is not replaced or adopted, and the tenant is told, on
// their class, that the host's is not mirrored.
func TestATenantsOwnStorageClassIsNotReplaced(t *testing.T) {
	ctx := setup(t)
	name := unique("e2e-tenant-own")
	own := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "tenant.example.com"}
	create(t, ctx, w.virtualC, own)
	t.Cleanup(func() { _ = w.virtualC.Delete(context.Background(), own) })
	removeHostClass(t, name)
	create(t, ctx, w.hostC, platformClass(name))

	testkit.Eventually(t, 30*time.Second, "an event on the tenant's class", func() (bool, string) {
		var list eventsv1.EventList
		if err := w.virtualC.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		for _, e := range list.Items {
			if e.Regarding.Kind == "StorageClass" && e.Regarding.Name == name && e.Reason == storageclasses.ReasonNotMirrored {
				return strings.Contains(e.Note, "not mirrored"), e.Note
			}
		}
		return false, fmt.Sprintf("%d events, none about %s", len(list.Items), name)
	})
	v := &storagev1.StorageClass{}
	if err := w.virtualC.Get(ctx, client.ObjectKey{Name: name}, v); err != nil {
		t.Fatal(err)
	}
	if v.UID != own.UID || v.ResourceVersion != own.ResourceVersion || v.Provisioner != "tenant.example.com" || v.Labels[v1alpha1.SyncerManagedByLabel] != "" {
		t.Errorf("the tenant's class was changed: %+v", v)
	}
}

// A claim that names a class the host does not have stays Pending, and the
// tenant reads why on the claim.
func TestAClaimOfAClassTheHostLacksSaysSo(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "no-such-class")
	class := unique("e2e-no-such-class")
	create(t, ctx, w.virtualC, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class,
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}})
	testkit.Eventually(t, 60*time.Second, "a Warning on the claim naming the missing class", func() (bool, string) {
		var list corev1.EventList
		if err := w.virtualC.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "PersistentVolumeClaim" && e.InvolvedObject.Name == "data" && e.Type == corev1.EventTypeWarning {
				if strings.Contains(e.Message, fmt.Sprintf("%q not found", class)) {
					return true, ""
				}
				seen = append(seen, e.Reason+": "+e.Message)
			}
		}
		return false, fmt.Sprint(seen)
	})
}

// Without sync.storageClasses nothing is mirrored, and copies a run with
// it left behind go; the tenant's own classes stay. (A cluster of its own:
// the shared syncer mirrors.)
func TestWithoutTheFlagNoStorageClassIsMirrored(t *testing.T) {
	ctx := setup(t)
	host := &storagev1.StorageClass{}
	if err := w.hostC.Get(ctx, client.ObjectKey{Name: kwokDefaultClass}, host); err != nil {
		t.Fatal(err)
	}
	vc := ownCluster(t, "unmirrored", func(vc client.Client) {
		create(t, ctx, vc, storageclasses.Mirror(host),
			&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "tenant-own"}, Provisioner: "tenant.example.com"})
	}, "--sync-storage-classes=false")
	testkit.Eventually(t, 60*time.Second, "only the tenant's class left", func() (bool, string) {
		var list storagev1.StorageClassList
		if err := vc.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		var got []string
		for _, sc := range list.Items {
			got = append(got, sc.Name)
		}
		return slices.Equal(got, []string{"tenant-own"}), fmt.Sprint(got)
	})
}
