package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/translate"
)

// everything lists "Kind/name" of every host object from virtual namespace ns.
func everything(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, list := range []client.ObjectList{&corev1.PodList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{},
		&corev1.SecretList{}, &corev1.PersistentVolumeClaimList{}} {
		out = append(out, originNames(t, list, ns)...)
	}
	var slices_ discoveryv1.EndpointSliceList
	if _, err := hostObjects(t.Context(), &slices_, ns); err != nil {
		t.Fatal(err)
	}
	for _, s := range slices_.Items {
		out = append(out, "EndpointSlice/"+s.Name)
	}
	slices.Sort(out)
	return out
}

// app creates a small application: a deployment using a ConfigMap, a
// Service, and a claim.
func app(t *testing.T, ns string) {
	t.Helper()
	d := deployment(ns, "shop", 2)
	d.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "shop"}}}}}
	create(t, t.Context(), w.virtualC, d,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Data: map[string]string{"a": "b"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "cache", Namespace: ns}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}},
	)
}

func runningHostPods(t *testing.T, ns string) map[string]types.UID {
	t.Helper()
	var pods corev1.PodList
	if _, err := hostObjects(t.Context(), &pods, ns); err != nil {
		t.Fatal(err)
	}
	out := map[string]types.UID{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			out[p.Name] = p.UID
		}
	}
	return out
}

// Deleting a virtual namespace removes every host object that came from it.
func TestDeletingANamespaceCleansTheHost(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "temporary")
	app(t, ns)
	testkit.Eventually(t, 60*time.Second, "the application on the host", func() (bool, string) {
		got := everything(t, ns)
		return len(runningHostPods(t, ns)) == 2 && slices.Contains(got, "ConfigMap/shop") &&
			slices.Contains(got, "Service/shop") && slices.Contains(got, "PersistentVolumeClaim/cache"), fmt.Sprint(got)
	})
	if err := w.virtualC.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 90*time.Second, "nothing of the namespace left on the host", func() (bool, string) {
		got := everything(t, ns)
		return len(got) == 0, fmt.Sprint(got)
	})
	testkit.Eventually(t, 60*time.Second, "the virtual namespace gone", func() (bool, string) {
		err := w.virtualC.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
		return isNotFound(err), fmt.Sprint(err)
	})
}

// Restarting the syncer creates no duplicates and loses nothing; what
// changed while it was down is caught up, and host objects of this cluster
// without a virtual twin are removed.
func TestRestartingTheSyncerResyncs(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "restart")
	app(t, ns)
	testkit.Eventually(t, 60*time.Second, "the application running", func() (bool, string) {
		got := runningHostPods(t, ns)
		return len(got) == 2, fmt.Sprint(got)
	})
	before := runningHostPods(t, ns)
	beforeAll := everything(t, ns)

	w.syncer.stop()

	// While the syncer is down: an orphan appears on the host, a virtual
	// Service is deleted, and a new pod is created.
	orphan := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.names.HostName(ns, "ghost"), Namespace: hostNamespace}}
	w.names.Mark(orphan, translate.Origin{Kind: "ConfigMap", Namespace: ns, Name: "ghost"})
	orphanPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: w.names.HostName(ns, "ghost"), Namespace: hostNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	w.names.Mark(orphanPod, translate.Origin{Kind: "Pod", Namespace: ns, Name: "ghost"})
	create(t, ctx, w.hostC, orphan, orphanPod)
	if err := w.virtualC.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	create(t, ctx, w.virtualC, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "latecomer", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})

	if err := w.startSyncer(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "orphans and the deleted Service's twin removed, the new pod synced", func() (bool, string) {
		got := everything(t, ns)
		return !slices.Contains(got, "ConfigMap/ghost") && !slices.Contains(got, "Pod/ghost") &&
			!slices.Contains(got, "Service/shop") && slices.Contains(got, "Pod/latecomer"), fmt.Sprint(got)
	})
	testkit.Eventually(t, 30*time.Second, "the latecomer Running on both sides", func() (bool, string) {
		p := &corev1.Pod{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "latecomer"}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning, string(p.Status.Phase)
	})
	after := runningHostPods(t, ns)
	for name, uid := range before {
		if after[name] != uid {
			t.Errorf("host pod %s was replaced or lost across the restart", name)
		}
	}
	if len(after) != len(before)+1 {
		t.Errorf("host pods before %v, after %v: want exactly one more", before, after)
	}
	var vpods corev1.PodList
	if err := w.virtualC.List(ctx, &vpods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(vpods.Items) != 3 {
		t.Errorf("virtual pods: %d, want 3", len(vpods.Items))
	}
	for _, o := range beforeAll {
		deletedService := o == "Service/shop" || strings.HasPrefix(o, "EndpointSlice/"+w.names.HostName(ns, "shop"))
		if deletedService || slices.Contains(everything(t, ns), o) {
			continue
		}
		t.Errorf("%s was lost across the restart", o)
	}
}

// A host object that happens to have a translated name but was not made by
// this cluster's syncer is left untouched; the tenant sees an event.
func TestForeignHostObjectsAreNeverAdopted(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "clash")
	foreignSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: w.names.HostName(ns, "web"), Namespace: hostNamespace,
		Labels: map[string]string{"owner": "someone-else"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}}
	foreignCM := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: w.names.HostName(ns, "cfg"), Namespace: hostNamespace},
		Data: map[string]string{"theirs": "true"}}
	create(t, ctx, w.hostC, foreignSvc, foreignCM)
	svcRV, cmRV := foreignSvc.ResourceVersion, foreignCM.ResourceVersion

	create(t, ctx, w.virtualC,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: ns}, Data: map[string]string{"ours": "true"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "user", Namespace: ns}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox", EnvFrom: []corev1.EnvFromSource{{
				ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}}}},
	)
	for _, name := range []string{"web", "cfg"} {
		testkit.Eventually(t, 30*time.Second, "a conflict event on "+name, func() (bool, string) {
			var events corev1.EventList
			if err := w.virtualC.List(ctx, &events, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			for _, e := range events.Items {
				if e.InvolvedObject.Name == name && e.Reason == "HostNameConflict" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events", len(events.Items))
		})
	}
	// The pod would read the foreign ConfigMap in place of its own: it is
	// refused, naming the reference, and never reaches the host.
	testkit.Eventually(t, 30*time.Second, "the pod refused for its reference", func() (bool, string) {
		p := &corev1.Pod{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "user"}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.Reason == "PodSecurity" && strings.Contains(p.Status.Message, "spec.containers[0].envFrom[0].configMapRef"), p.Status.Message
	})
	if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "user")}, &corev1.Pod{}); !isNotFound(err) {
		t.Errorf("the pod reached the host: %v", err)
	}
	gotSvc, gotCM := &corev1.Service{}, &corev1.ConfigMap{}
	if err := w.hostC.Get(ctx, client.ObjectKeyFromObject(foreignSvc), gotSvc); err != nil {
		t.Fatal(err)
	}
	if err := w.hostC.Get(ctx, client.ObjectKeyFromObject(foreignCM), gotCM); err != nil {
		t.Fatal(err)
	}
	if gotSvc.ResourceVersion != svcRV || gotCM.ResourceVersion != cmRV {
		t.Errorf("a foreign host object was changed")
	}
	if _, ok := w.names.OriginOf(gotSvc); ok {
		t.Errorf("the foreign Service was adopted")
	}
}

// A host pod deleted behind the syncer's back shows in the virtual cluster
// as a failed pod, as a kubelet reports a lost one, and the tenant's
// Deployment replaces it.
func TestAHostPodDeletedByHandFailsTheVirtualPod(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "fragile")
	create(t, ctx, w.virtualC, deployment(ns, "app", 1))
	var victim corev1.Pod
	testkit.Eventually(t, 60*time.Second, "the pod Running", func() (bool, string) {
		var pods corev1.PodList
		if err := w.virtualC.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		if len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning {
			return false, fmt.Sprintf("%d pods", len(pods.Items))
		}
		victim = pods.Items[0]
		return true, ""
	})
	h := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: hostNamespace, Name: w.names.HostName(ns, victim.Name)}}
	if err := w.hostC.Delete(ctx, h, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the virtual pod Failed", func() (bool, string) {
		p := &corev1.Pod{}
		err := w.virtualC.Get(ctx, client.ObjectKeyFromObject(&victim), p)
		return err == nil && p.Status.Phase == corev1.PodFailed && p.Status.Reason == "HostPodDeleted", fmt.Sprintf("%v %s", err, p.Status.Phase)
	})
	testkit.Eventually(t, 60*time.Second, "a replacement Running on both sides", func() (bool, string) {
		var pods corev1.PodList
		if err := w.virtualC.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, p := range pods.Items {
			if p.Name != victim.Name && p.Status.Phase == corev1.PodRunning {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d pods", len(pods.Items))
	})
}

// A host pod that vanished while the syncer was down is noticed on start.
func TestAHostPodLostWhileTheSyncerWasDown(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "lost")
	create(t, ctx, w.virtualC, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
	testkit.Eventually(t, 60*time.Second, "the pod Running", func() (bool, string) {
		p := &corev1.Pod{}
		err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "solo"}, p)
		return err == nil && p.Status.Phase == corev1.PodRunning, fmt.Sprint(err)
	})
	w.syncer.stop()
	h := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: hostNamespace, Name: w.names.HostName(ns, "solo")}}
	if err := w.hostC.Delete(ctx, h, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.startSyncer(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "the virtual pod Failed", func() (bool, string) {
		p := &corev1.Pod{}
		err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "solo"}, p)
		return err == nil && p.Status.Phase == corev1.PodFailed && p.Status.Reason == "HostPodDeleted", fmt.Sprintf("%v %s", err, p.Status.Phase)
	})
	// A bare pod is not recreated on the host: it failed, as it would have
	// with a kubelet.
	err := w.hostC.Get(ctx, client.ObjectKeyFromObject(h), &corev1.Pod{})
	if !isNotFound(err) {
		t.Errorf("the lost pod came back on the host: %v", err)
	}
}

// A pod the host namespace's quota refuses stays Pending with an event
// that says why, and reaches the host once there is room.
func TestAPodTheHostRefusesSaysWhyAndRunsOnceThereIsRoom(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "crowded")
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "full", Namespace: hostNamespace},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}},
	}
	create(t, ctx, w.hostC, quota)
	t.Cleanup(func() { _ = w.hostC.Delete(ctx, quota) })
	testkit.Eventually(t, 30*time.Second, "the host's quota controller counting pods", func() (bool, string) {
		if err := w.hostC.Get(ctx, client.ObjectKeyFromObject(quota), quota); err != nil {
			return false, err.Error()
		}
		_, ok := quota.Status.Hard[corev1.ResourcePods]
		return ok, "no status yet"
	})

	create(t, ctx, w.virtualC, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "waits", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	})
	testkit.Eventually(t, 30*time.Second, "an event on the virtual pod naming the host's quota", func() (bool, string) {
		var events corev1.EventList
		if err := w.virtualC.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "waits" && e.Reason == "HostRefused" {
				return strings.Contains(e.Message, "exceeded quota: full"), e.Message
			}
		}
		return false, "no HostRefused event"
	})

	if err := w.hostC.Delete(ctx, quota); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "the pod Running once the quota is gone", func() (bool, string) {
		v := &corev1.Pod{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "waits"}, v); err != nil {
			return false, err.Error()
		}
		return v.Status.Phase == corev1.PodRunning, string(v.Status.Phase)
	})
}
