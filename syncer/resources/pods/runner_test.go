package pods

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/synctest"
)

type noNodes struct{}

func (noNodes) Ensure(context.Context, string) error { return nil }

// The pod kind's down controller on the shared runner.
func TestPodsDownOnTheSharedRunner(t *testing.T) {
	security, err := NewSecurity("baseline")
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "u-web-0", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1"}}},
	}
	newImage := pod.DeepCopy()
	newImage.Spec.Containers[0].Image = "nginx:2"
	privileged := pod.DeepCopy()
	privileged.Spec.HostNetwork = true
	refused := privileged.DeepCopy()
	refused.Status = refusedStatus(privileged, security.Check(privileged))
	twin := func(v *corev1.Pod) *corev1.Pod {
		return HostPod(v, Env{Names: synctest.Names, ClusterDomain: "cluster.local", Workloads: config.Workloads{}})
	}
	foreign := synctest.Foreign(pod, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "theirs", Image: "busybox"}}}})
	key := types.NamespacedName{Namespace: "shop", Name: "web-0"}
	newDown := func(p *syncer.Pair) reconcile.Reconciler {
		return syncer.For(p, "pod", Kind, syncer.Syncer[*corev1.Pod](New(p, security, noNodes{})))
	}
	synctest.Run(t, newDown, []synctest.Case{{
		Name:           "an accepted pod gets its translated twin",
		InitialVirtual: []client.Object{pod}, Request: key,
		ExpectedVirtual: []client.Object{pod},
		ExpectedHost:    []client.Object{twin(pod)},
	}, {
		Name:           "a new image reaches the running twin",
		InitialVirtual: []client.Object{newImage}, InitialHost: []client.Object{twin(pod)}, Request: key,
		ExpectedVirtual: []client.Object{newImage},
		ExpectedHost:    []client.Object{twin(newImage)},
	}, {
		Name:           "a refused pod never reaches the host, and says why",
		InitialVirtual: []client.Object{privileged}, Request: key,
		ExpectedVirtual: []client.Object{refused},
		Events:          []string{ReasonPodSecurity},
	}, {
		Name:        "a deleted pod's twin goes",
		InitialHost: []client.Object{twin(pod)}, Request: key,
	}, {
		Name:           "a foreign pod of the twin's name is left alone, and the tenant told",
		InitialVirtual: []client.Object{pod}, InitialHost: []client.Object{foreign}, Request: key,
		ExpectedVirtual: []client.Object{pod},
		ExpectedHost:    []client.Object{foreign},
		Events:          []string{"HostNameConflict"},
	}})
}
