package realnodes

import (
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/syncer/translate"
	"github.com/warren-dev/warren/test/localkube"
)

// twin is a host object the syncer made for a virtual one.
type twin struct {
	uid    types.UID
	origin string // the virtual object's UID
}

// twins are the syncer's host twins in the cluster's namespace, by kind and
// name; it fails the test if two twins come from one virtual object.
func (s *story) twins(cluster string) map[string]twin {
	s.t.Helper()
	ns := "vc-" + cluster
	sel := metav1.ListOptions{LabelSelector: v1alpha1.SyncerManagedByLabel + "=" + v1alpha1.SyncerManagedByValue}
	out := map[string]twin{}
	add := func(kind string, items []metav1.Object) {
		seen := map[string]string{}
		for _, o := range items {
			origin := o.GetAnnotations()[v1alpha1.OriginUIDAnnotation]
			if other, dup := seen[origin]; dup && origin != "" {
				s.t.Errorf("%s %s and %s are twins of one virtual object (UID %s)", kind, other, o.GetName(), origin)
			}
			seen[origin] = o.GetName()
			out[kind+"/"+o.GetName()] = twin{uid: o.GetUID(), origin: origin}
		}
	}
	pods, err := s.kube.CoreV1().Pods(ns).List(s.ctx, sel)
	if err != nil {
		s.t.Fatal(err)
	}
	services, err := s.kube.CoreV1().Services(ns).List(s.ctx, sel)
	if err != nil {
		s.t.Fatal(err)
	}
	add("pod", objects(pods.Items))
	add("service", objects(services.Items))
	return out
}

func objects[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}

// syncerStatus is the syncer container's status in the cluster's control
// plane pod.
func (s *story) syncerStatus(cluster string) (corev1.ContainerStatus, bool) {
	pod, err := s.kube.CoreV1().Pods("vc-"+cluster).Get(s.ctx, cluster+"-0", metav1.GetOptions{})
	if err != nil {
		return corev1.ContainerStatus{}, false
	}
	for _, st := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
		if st.Name == "syncer" {
			return st, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// syncerRestartLosesNothing kills the syncer's container on the real node
// (SIGKILL, as a crash would), has the tenant delete a pod and create one
// while it comes back, and checks that afterwards every twin is the one it
// was (same UIDs), none is doubled, both changes reached the host, and the
// Service still answers from all its pods.
func (s *story) syncerRestartLosesNothing() {
	t := s.t
	tenant := s.tenantClient()
	before := s.twins("alpha")
	st, ok := s.syncerStatus("alpha")
	if !ok || st.ContainerID == "" {
		t.Fatalf("the control plane pod has no running syncer container: %+v", st)
	}
	if err := s.host.KillContainer(0, st.ContainerID); err != nil {
		t.Fatal(err)
	}
	// The tenant goes on working while the syncer is down.
	if err := tenant.CoreV1().Pods("default").Delete(s.ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	late := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "default"},
		Spec:       localkube.AgnhostPod("late", "netexec", "--http-port=8080", "--udp-port=-1"),
	}
	if _, err := tenant.CoreV1().Pods("default").Create(s.ctx, late, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitFor(2*time.Minute, "the syncer restarted and Ready", func() (bool, string) {
		now, ok := s.syncerStatus("alpha")
		return ok && now.RestartCount > st.RestartCount && now.Ready && now.ContainerID != st.ContainerID, fmt.Sprintf("%+v", now)
	})
	lateTwin := s.hostPod("alpha", "late")
	apiTwin := "pod/" + hostName("api")
	s.waitFor(2*time.Minute, "the deleted pod's twin gone from the host", func() (bool, string) {
		_, there := s.twins("alpha")[apiTwin]
		return !there, apiTwin + " is still there"
	})
	after := s.twins("alpha")
	for key, was := range before {
		if key == apiTwin {
			continue
		}
		if now, ok := after[key]; !ok {
			t.Errorf("%s was lost when the syncer restarted", key)
		} else if now != was {
			t.Errorf("%s was replaced when the syncer restarted: UID %s (of %s) became %s (of %s)", key, was.uid, was.origin, now.uid, now.origin)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[key]; !ok && key != "pod/"+lateTwin.Name {
			t.Errorf("%s appeared on the host when the syncer restarted; the tenant made nothing new but pod late", key)
		}
	}
	svc, err := tenant.CoreV1().Services("default").Get(s.ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.webAnswersFromAll(s.hostPodIP("alpha", "client"), svc.Spec.ClusterIP)
}

// hostName is the host twin's name of a tenant object in namespace default
// of cluster alpha.
func hostName(name string) string {
	return translate.Translator{Cluster: "alpha", HostNamespace: "vc-alpha"}.HostName("default", name)
}
