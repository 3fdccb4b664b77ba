package realnodes

import (
	"fmt"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// nodeDiesAndBootsAgain stops the real node under alpha's control plane as
// a power cut would (every container on it ends), and boots it again on the
// same disk. Meanwhile the pod waits for its node (the same pod, bound to
// it: a StatefulSet never runs two of one name), the data claim is kept,
// and the cluster says it is not Ready; once the node is back the same pod
// runs again, the tenant's data is there, and the kubeconfig in Git (not
// written again) answers.
func (s *story) nodeDiesAndBootsAgain() {
	t := s.t
	s.kubectl("-n", "default", "create", "configmap", "made-before-the-outage", "--from-literal=written=before")
	before := s.controlPlanePod("alpha")
	claims := s.claimUIDs("vc-alpha")
	kubeconfigCommit := s.repo.Head(t, "main")
	if len(claims) == 0 {
		t.Fatal("alpha's control plane has no data claim")
	}

	if err := s.host.StopRealNode(0); err != nil {
		t.Fatal(err)
	}
	s.waitFor(3*time.Minute, "the node NotReady and alpha not Ready", func() (bool, string) {
		node, err := s.kube.CoreV1().Nodes().Get(s.ctx, before.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		var vc v1alpha1.VirtualCluster
		if err := s.admin.Get(s.ctx, client.ObjectKey{Name: "alpha"}, &vc); err != nil {
			return false, err.Error()
		}
		return !nodeIsReady(node) && !conditions.IsReady(&vc), fmt.Sprintf("node Ready=%v; alpha %+v", nodeIsReady(node), vc.Status.Conditions)
	})
	during, err := s.kube.CoreV1().Pods("vc-alpha").Get(s.ctx, "alpha-0", metav1.GetOptions{})
	if err != nil || during.UID != before.UID || during.Spec.NodeName != before.Spec.NodeName {
		t.Fatalf("while its node is down the control plane pod should wait on it: got %v, err %v", podWhere(during), err)
	}
	s.assertClaims("vc-alpha", claims, "while the node is down")

	if err := s.host.StartRealNode(s.ctx, 0); err != nil {
		t.Fatal(err)
	}
	after := s.controlPlanePod("alpha")
	if after.UID != before.UID {
		t.Errorf("the control plane pod was replaced (%s → %s); the same one should run again", before.UID, after.UID)
	}
	s.assertClaims("vc-alpha", claims, "after the node booted again")
	s.waitFor(2*time.Minute, "alpha Ready again", func() (bool, string) {
		var vc v1alpha1.VirtualCluster
		err := s.admin.Get(s.ctx, client.ObjectKey{Name: "alpha"}, &vc)
		return err == nil && conditions.IsReady(&vc), fmt.Sprintf("%v %+v", err, vc.Status.Conditions)
	})
	if head := s.repo.Head(t, "main"); head != kubeconfigCommit {
		t.Errorf("warren committed again (%s → %s): the kubeconfig should stay valid as it is", kubeconfigCommit, head)
	}
	s.kubeIn = s.unsealKubeconfig("alpha", after.Status.PodIP)
	s.waitFor(2*time.Minute, "the tenant's ConfigMap through the same kubeconfig", func() (bool, string) {
		out, err := s.tryKubectl("-n", "default", "get", "configmap", "made-before-the-outage", "-o", "jsonpath={.data.written}")
		return err == nil && out == "before", fmt.Sprintf("%v %s", err, out)
	})
}

// claimUIDs maps each claim in namespace to its UID.
func (s *story) claimUIDs(namespace string) map[string]string {
	s.t.Helper()
	list, err := s.kube.CoreV1().PersistentVolumeClaims(namespace).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list.Items {
		out[c.Name] = string(c.UID)
	}
	return out
}

// assertClaims checks namespace still holds exactly the claims want.
func (s *story) assertClaims(namespace string, want map[string]string, when string) {
	s.t.Helper()
	got := s.claimUIDs(namespace)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		s.t.Errorf("the data claims changed %s: %v, want %v", when, got, want)
	}
}

func nodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podWhere(p *corev1.Pod) string {
	if p == nil {
		return "no pod"
	}
	return fmt.Sprintf("pod %s uid %s on %q, phase %s", p.Name, p.UID, p.Spec.NodeName, p.Status.Phase)
}
