package storageclasses

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
)

func hostClass(name string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"tier": "ssd", v1alpha1.ClusterLabel: "forged"},
			Annotations: map[string]string{
				DefaultClassAnnotation:                             "true",
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
			}},
		Provisioner:          "csi.example.com",
		Parameters:           map[string]string{"type": "gp3"},
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(true),
		MountOptions:         []string{"noatime"},
		AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{
			{Key: "topology.kubernetes.io/zone", Values: []string{"a"}},
		}}},
	}
}

// virtualAPI is a fake virtual API that, like the real one, gives every new
// object a UID and refuses updates to a class's immutable fields.
func virtualAPI(objs ...client.Object) client.WithWatch {
	var uids atomic.Int32
	return fake.NewClientBuilder().WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			obj.SetUID(types.UID(fmt.Sprint("uid-", uids.Add(1))))
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if next, ok := obj.(*storagev1.StorageClass); ok {
				old := &storagev1.StorageClass{}
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), old); err == nil && !sameImmutable(old, next) {
					return apierrors.NewInvalid(schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}, obj.GetName(),
						field.ErrorList{field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden.")})
				}
			}
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
}

func syncerFor(host, virtual client.Client) (*Syncer, *events.FakeRecorder) {
	recorder := events.NewFakeRecorder(10)
	return &Syncer{Pair: &syncer.Pair{Config: &config.Config{SyncStorageClasses: true},
		Virtual: virtual, VirtualReader: virtual, Host: host, HostReader: host, Events: recorder}}, recorder
}

func reconcileClass(t *testing.T, s *Syncer, name string) reconcile.Result {
	t.Helper()
	res, err := s.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil {
		t.Fatalf("reconciling %s: %v", name, err)
	}
	return res
}

func virtualClass(t *testing.T, c client.Client, name string) *storagev1.StorageClass {
	t.Helper()
	sc := &storagev1.StorageClass{}
	if err := c.Get(context.Background(), types.NamespacedName{Name: name}, sc); err != nil {
		t.Fatalf("reading virtual class %s: %v", name, err)
	}
	return sc
}

// sameSpec reports whether the copy carries the host class's settings.
func sameSpec(a, b *storagev1.StorageClass) bool {
	return sameImmutable(a, b) && equality.Semantic.DeepEqual(a.AllowVolumeExpansion, b.AllowVolumeExpansion) &&
		equality.Semantic.DeepEqual(a.MountOptions, b.MountOptions) && equality.Semantic.DeepEqual(a.AllowedTopologies, b.AllowedTopologies)
}

func TestAMirrorIsTheHostClassMarkedAsWarrens(t *testing.T) {
	host := hostClass("fast")
	host.Annotations[betaDefaultClassAnnotation] = "true"
	m := Mirror(host)
	if m.Name != "fast" || !sameSpec(m, host) {
		t.Errorf("mirror %+v differs from the host class %+v", m, host)
	}
	if !Mirrored(m) || m.Labels["tier"] != "ssd" {
		t.Errorf("labels %v: want the host's and the syncer's mark", m.Labels)
	}
	if _, ok := m.Labels[v1alpha1.ClusterLabel]; ok {
		t.Errorf("labels %v: a host label under warren.dev/ was copied", m.Labels)
	}
	want := map[string]string{DefaultClassAnnotation: "true", betaDefaultClassAnnotation: "true"}
	if !equality.Semantic.DeepEqual(m.Annotations, want) {
		t.Errorf("annotations %v, want only the default-class ones %v", m.Annotations, want)
	}
	if host.Labels[v1alpha1.SyncerManagedByLabel] != "" {
		t.Error("mirroring changed the host object")
	}
	if Mirrored(&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}) {
		t.Error("an unmarked class is taken for a copy")
	}
}

// The copy follows the host through its whole life, and whatever a tenant
// does to it is put back.
func TestTheCopyFollowsTheHostAndRevertsTenantEdits(t *testing.T) {
	ctx := context.Background()
	host := fake.NewClientBuilder().WithObjects(hostClass("fast")).Build()
	virtual := virtualAPI()
	s, _ := syncerFor(host, virtual)

	reconcileClass(t, s, "fast")
	v := virtualClass(t, virtual, "fast")
	if !Mirrored(v) || v.Annotations[DefaultClassAnnotation] != "true" || !sameSpec(v, hostClass("fast")) {
		t.Fatalf("the new copy is not the host's default class: %+v", v)
	}
	uid := v.UID

	// A tenant's edit, in place.
	edited := v.DeepCopy()
	edited.Labels["mine"] = "yes"
	edited.Annotations[DefaultClassAnnotation] = "false"
	edited.AllowVolumeExpansion = ptr.To(false)
	edited.MountOptions = nil
	edited.Finalizers = []string{"tenant.example.com/keep"}
	if err := virtual.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	reconcileClass(t, s, "fast")
	v = virtualClass(t, virtual, "fast")
	if v.UID != uid || v.Labels["mine"] != "" || v.Annotations[DefaultClassAnnotation] != "true" ||
		!sameSpec(v, hostClass("fast")) || len(v.Finalizers) != 0 {
		t.Errorf("the tenant's edit was not reverted in place: %+v", v)
	}

	// A tenant's deletion.
	if err := virtual.Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	reconcileClass(t, s, "fast")
	if v = virtualClass(t, virtual, "fast"); !sameSpec(v, hostClass("fast")) {
		t.Errorf("the deleted copy was not made again: %+v", v)
	}
	uid = v.UID

	// The host changes what may change in place.
	h := &storagev1.StorageClass{}
	if err := host.Get(ctx, types.NamespacedName{Name: "fast"}, h); err != nil {
		t.Fatal(err)
	}
	h.MountOptions = []string{"noatime", "nodiratime"}
	delete(h.Annotations, DefaultClassAnnotation)
	if err := host.Update(ctx, h); err != nil {
		t.Fatal(err)
	}
	reconcileClass(t, s, "fast")
	v = virtualClass(t, virtual, "fast")
	if v.UID != uid || len(v.MountOptions) != 2 || v.Annotations[DefaultClassAnnotation] != "" {
		t.Errorf("mount options %v, annotations %v, uid %s (was %s): the host's change was not carried over in place",
			v.MountOptions, v.Annotations, v.UID, uid)
	}

	// The host class is made again with other parameters: the API refuses
	// to update them, so the copy is replaced.
	h.Parameters = map[string]string{"type": "io2"}
	h.Provisioner = "csi2.example.com"
	if err := host.Update(ctx, h); err != nil {
		t.Fatal(err)
	}
	reconcileClass(t, s, "fast")
	v = virtualClass(t, virtual, "fast")
	if v.UID == uid || v.Parameters["type"] != "io2" || v.Provisioner != "csi2.example.com" || !Mirrored(v) {
		t.Errorf("uid %s (was %s), provisioner %s, parameters %v: the copy was not recreated with the host's", v.UID, uid, v.Provisioner, v.Parameters)
	}

	// The host class goes.
	if err := host.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	reconcileClass(t, s, "fast")
	if err := virtual.Get(ctx, types.NamespacedName{Name: "fast"}, &storagev1.StorageClass{}); !apierrors.IsNotFound(err) {
		t.Errorf("the copy of a removed host class is still there: %v", err)
	}
}

// A class the tenant made is theirs: never changed or removed, also when
// the host has a class of that name, which is then not mirrored, and the
// tenant is told why.
func TestATenantsOwnClassIsLeftAlone(t *testing.T) {
	ctx := context.Background()
	own := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: "tenant.example.com"}
	alone := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Provisioner: "tenant.example.com"}
	host := fake.NewClientBuilder().WithObjects(hostClass("fast")).Build()
	virtual := virtualAPI(own, alone)
	s, recorder := syncerFor(host, virtual)

	for _, name := range []string{"fast", "mine"} {
		before := virtualClass(t, virtual, name)
		reconcileClass(t, s, name)
		after := virtualClass(t, virtual, name)
		if after.ResourceVersion != before.ResourceVersion || after.Provisioner != "tenant.example.com" || Mirrored(after) {
			t.Errorf("the tenant's class %s was changed: %+v", name, after)
		}
	}
	select {
	case e := <-recorder.Events:
		if !strings.Contains(e, ReasonNotMirrored) || !strings.Contains(e, `"fast"`) {
			t.Errorf("event %q does not say the host class fast is not mirrored", e)
		}
	default:
		t.Error("no event tells the tenant that the host class fast is not mirrored")
	}
	select {
	case e := <-recorder.Events:
		t.Errorf("unexpected event %q: the tenant's class mine hides no host class", e)
	default:
	}
	if err := virtual.Get(ctx, types.NamespacedName{Name: "fast"}, &storagev1.StorageClass{}); err != nil {
		t.Fatal(err)
	}
}

// A host cache that has not seen a new host class yet never takes the copy
// away: the live host API is asked first.
func TestALaggingHostCacheKeepsTheCopy(t *testing.T) {
	cache := fake.NewClientBuilder().Build()
	live := fake.NewClientBuilder().WithObjects(hostClass("fast")).Build()
	virtual := virtualAPI(Mirror(hostClass("fast")))
	s, _ := syncerFor(cache, virtual)
	s.HostReader = live

	if res := reconcileClass(t, s, "fast"); res.RequeueAfter <= 0 {
		t.Error("not looked at again once the cache catches up")
	}
	virtualClass(t, virtual, "fast")
}

// Without the flag, copies an earlier run made are removed (a finalizer a
// tenant added does not keep them), and the tenant's own classes stay.
func TestTheRemoverTakesOnlyCopies(t *testing.T) {
	ctx := context.Background()
	stale := Mirror(hostClass("fast"))
	stale.Finalizers = []string{"tenant.example.com/keep"}
	own := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Provisioner: "tenant.example.com"}
	virtual := virtualAPI(stale, own)
	r := &Remover{Virtual: virtual, VirtualReader: virtual}
	if err := r.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	var list storagev1.StorageClassList
	if err := virtual.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "mine" {
		var names []string
		for _, sc := range list.Items {
			names = append(names, sc.Name)
		}
		t.Errorf("virtual classes %v, want only the tenant's mine", names)
	}
}
