package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/translate"
)

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "nginx", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}},
			},
		},
	}
}

// A tenant deploys 3 replicas: the host runs 3 translated pods on its kwok
// nodes, and the virtual pods show Running, bound to virtual node objects.
func TestADeploymentRunsOnTheHost(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "shop")
	create(t, ctx, w.virtualC, deployment(ns, "web", 3))

	testkit.Eventually(t, 60*time.Second, "3 host pods Running on kwok nodes", func() (bool, string) {
		pods, err := hostObjects(ctx, &corev1.PodList{}, ns)
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
				running++
			}
		}
		return running == 3 && len(pods.Items) == 3, fmt.Sprintf("%d of %d running", running, len(pods.Items))
	})
	testkit.Eventually(t, 30*time.Second, "3 virtual pods Running, bound to virtual nodes", func() (bool, string) {
		var pods corev1.PodList
		if err := w.virtualC.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		ok := 0
		for _, p := range pods.Items {
			node := &corev1.Node{}
			if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" || p.Status.PodIP == "" {
				continue
			}
			if err := w.virtualC.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, node); err != nil {
				return false, fmt.Sprintf("pod %s bound to %s: %v", p.Name, p.Spec.NodeName, err)
			}
			ok++
		}
		return ok == 3 && len(pods.Items) == 3, fmt.Sprintf("%d of %d running and bound", ok, len(pods.Items))
	})

	// The host scheduler's word reaches the tenant, in the tenant's names.
	testkit.Eventually(t, 30*time.Second, "Scheduled events on the virtual pods", func() (bool, string) {
		var events corev1.EventList
		if err := w.virtualC.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, e := range events.Items {
			if e.Reason == "Scheduled" && e.InvolvedObject.Kind == "Pod" && strings.Contains(e.Message, ns+"/"+e.InvolvedObject.Name) &&
				!strings.Contains(e.Message, hostNamespace) {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d Scheduled events", n)
	})

	// The host twin is an honest translation: marked with its origin, no
	// host service-account token, the virtual pod's status mirrored.
	var vpods corev1.PodList
	if err := w.virtualC.List(ctx, &vpods, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, v := range vpods.Items {
		h := &corev1.Pod{}
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, v.Name)}, h); err != nil {
			t.Fatalf("host twin of %s: %v", v.Name, err)
		}
		if o, ok := w.names.OriginOf(h); !ok || o.Name != v.Name || o.Namespace != ns || o.Kind != "Pod" {
			t.Errorf("host pod %s origin = %+v, %v", h.Name, o, ok)
		}
		if h.Labels["app"] != "web" {
			t.Errorf("host pod %s lost the tenant's labels: %v", h.Name, h.Labels)
		}
		if h.Spec.AutomountServiceAccountToken == nil || *h.Spec.AutomountServiceAccountToken {
			t.Errorf("host pod %s may mount a host token", h.Name)
		}
		for _, vol := range h.Spec.Volumes {
			if vol.Projected != nil {
				for _, src := range vol.Projected.Sources {
					if src.ServiceAccountToken != nil {
						t.Errorf("host pod %s projects a host service-account token", h.Name)
					}
				}
			}
		}
		if v.Status.PodIP != h.Status.PodIP || v.Spec.NodeName != h.Spec.NodeName {
			t.Errorf("virtual pod %s shows %s on %s, host twin %s on %s", v.Name, v.Status.PodIP, v.Spec.NodeName, h.Status.PodIP, h.Spec.NodeName)
		}
	}
}

// Pods that would reach into the host are refused before anything is
// created there, and the tenant reads why on the pod.
func TestUnsafePodsAreRefusedWithAReason(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "unsafe")
	container := func() corev1.Container { return corev1.Container{Name: "c", Image: "busybox"} }
	privileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns}, Spec: corev1.PodSpec{Containers: []corev1.Container{container()}}}
	privileged.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	hostPath := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hostpath", Namespace: ns}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{container()},
		Volumes:    []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}},
	}}
	hostNetwork := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "hostnetwork", Namespace: ns}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{container()}, HostNetwork: true,
	}}
	create(t, ctx, w.virtualC, privileged, hostPath, hostNetwork)

	want := map[string]string{"privileged": "privileged", "hostpath": "hostPath", "hostnetwork": "host namespaces"}
	for name, reason := range want {
		testkit.Eventually(t, 30*time.Second, "pod "+name+" refused", func() (bool, string) {
			p := &corev1.Pod{}
			if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
				return false, err.Error()
			}
			var cond *corev1.PodCondition
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == corev1.PodScheduled {
					cond = &p.Status.Conditions[i]
				}
			}
			ok := p.Status.Reason == "PodSecurity" && strings.Contains(p.Status.Message, reason) &&
				cond != nil && cond.Status == corev1.ConditionFalse && strings.Contains(cond.Message, reason)
			return ok, fmt.Sprintf("status reason %q message %q", p.Status.Reason, p.Status.Message)
		})
		testkit.Eventually(t, 30*time.Second, "an event on pod "+name, func() (bool, string) {
			var events corev1.EventList
			if err := w.virtualC.List(ctx, &events, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			for _, e := range events.Items {
				if e.InvolvedObject.Name == name && e.Reason == "PodSecurity" && strings.Contains(e.Message, reason) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d events, none about %s", len(events.Items), name)
		})
	}
	// Nothing of this namespace reached the host.
	for _, list := range []client.ObjectList{&corev1.PodList{}, &corev1.SecretList{}, &corev1.ConfigMapList{}} {
		got, err := hostObjects(ctx, list, ns)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mustItems(t, got)); n > 0 {
			t.Errorf("%d host objects of %T reached the host", n, list)
		}
	}
}

// Names at and past 63 characters still find their twins both ways.
func TestLongNamesRoundTrip(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, strings.Repeat("n", 63))
	for _, name := range []string{strings.Repeat("p", 63), strings.Repeat("q", 64), strings.Repeat("r", 200)} {
		create(t, ctx, w.virtualC, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "long"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		})
		hostName := w.names.HostName(ns, name)
		if len(hostName) > translate.MaxNameLength {
			t.Fatalf("host name %q is too long", hostName)
		}
		testkit.Eventually(t, 60*time.Second, "long-named pod Running on both sides", func() (bool, string) {
			h, v := &corev1.Pod{}, &corev1.Pod{}
			if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: hostName}, h); err != nil {
				return false, "host: " + err.Error()
			}
			if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, v); err != nil {
				return false, "virtual: " + err.Error()
			}
			o, _ := w.names.OriginOf(h)
			return o.Name == name && o.Namespace == ns && v.Status.Phase == corev1.PodRunning,
				fmt.Sprintf("origin %+v, virtual phase %s", o, v.Status.Phase)
		})
	}
}

func mustItems(t *testing.T, list client.ObjectList) []any {
	t.Helper()
	switch l := list.(type) {
	case *corev1.PodList:
		return anySlice(l.Items)
	case *corev1.SecretList:
		return anySlice(l.Items)
	case *corev1.ConfigMapList:
		return anySlice(l.Items)
	case *corev1.ServiceList:
		return anySlice(l.Items)
	case *corev1.PersistentVolumeClaimList:
		return anySlice(l.Items)
	}
	t.Fatalf("unexpected list %T", list)
	return nil
}

// objectOf turns an item of mustItems back into an object.
func objectOf(item any) metav1.Object {
	switch o := item.(type) {
	case corev1.Pod:
		return &o
	case corev1.Secret:
		return &o
	case corev1.ConfigMap:
		return &o
	case corev1.Service:
		return &o
	case corev1.PersistentVolumeClaim:
		return &o
	}
	return &metav1.ObjectMeta{}
}

func anySlice[T any](in []T) []any {
	out := make([]any, len(in))
	for i := range in {
		out[i] = in[i]
	}
	return out
}
