package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// With --nodes=real, a virtual node is an honest copy of the host node's
// facts: its labels, capacity and addresses. (A cluster of its own: a second
// virtual plane and syncer beside the shared ones.)
func TestRealNodesCopyHostFacts(t *testing.T) {
	ctx := setup(t)
	vc := ownCluster(t, "real", nil, "--nodes=real")

	create(t, ctx, vc, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}})
	testkit.Eventually(t, 30*time.Second, "the default service account", func() (bool, string) {
		err := vc.Get(ctx, client.ObjectKey{Namespace: "app", Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, fmt.Sprint(err)
	})
	create(t, ctx, vc, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "app"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
	testkit.Eventually(t, 60*time.Second, "a virtual node with the host node's facts", func() (bool, string) {
		p := &corev1.Pod{}
		if err := vc.Get(ctx, client.ObjectKey{Namespace: "app", Name: "p"}, p); err != nil || p.Spec.NodeName == "" {
			return false, fmt.Sprint("pod not bound: ", err)
		}
		n := &corev1.Node{}
		if err := vc.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, n); err != nil {
			return false, err.Error()
		}
		host := &corev1.Node{}
		if err := w.hostC.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, host); err != nil {
			return false, err.Error()
		}
		pods := n.Status.Capacity[corev1.ResourcePods]
		return n.Labels["type"] == "kwok" && pods.Value() == 1000 && len(n.Status.Addresses) == len(host.Status.Addresses),
			fmt.Sprintf("labels %v capacity %v addresses %v conditions %d", n.Labels, n.Status.Capacity, n.Status.Addresses, len(n.Status.Conditions))
	})
}
