package e2e

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/gitserver"
)

// renderedKinds are kinds every cluster's namespace holds once applied (the
// brief's naming contract).
var renderedKinds = []string{
	"statefulsets.apps", "services", "configmaps", "serviceaccounts",
	"roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
	"resourcequotas", "limitranges", "networkpolicies.networking.k8s.io", "secrets",
}

// A team commits three clusters to a repository served over smart HTTP,
// changes one, then removes one.
func TestCommitChangeAndRemoveClusters(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	gitRoot := t.TempDir()
	server := gitserver.Start(t, gitRoot, gitserver.Options{})
	names := []string{"life-a", "life-b", "life-c"}
	repo, sha := newFleetRepo(t, gitRoot, "life", "life", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-life", fleetSpec{url: server.URL(repo.Name)})

	t.Run("1 three committed clusters become Ready, each namespace holding its objects", func(t *testing.T) {
		h := newHost(t, plane)
		h.waitFleetApplied(fleet, sha, 2*time.Minute)
		h.waitClustersReady(2*time.Minute, names...)
		for _, n := range names {
			vc, _ := h.virtualCluster(n)
			if vc.Status.HostNamespace != "vc-"+n {
				t.Errorf("VirtualCluster %s: host namespace %q, want vc-%s", n, vc.Status.HostNamespace, n)
			}
			if !strings.HasSuffix(vc.Status.SourceRevision, sha) || vc.Status.SourcePath != clusterFile(n) {
				t.Errorf("VirtualCluster %s came from %s %s, want %s at %s", n, vc.Status.SourcePath, vc.Status.SourceRevision, clusterFile(n), sha)
			}
			if vc.Status.Endpoint == "" {
				t.Errorf("VirtualCluster %s has no endpoint", n)
			}
			objs := h.sweep(v1alpha1.ClusterLabel + "=" + n)
			for _, kind := range renderedKinds {
				found := false
				for _, o := range objs {
					r := o.Resource.Resource
					if o.Resource.Group != "" {
						r += "." + o.Resource.Group
					}
					if r == kind && o.Namespace == "vc-"+n {
						found = true
					}
				}
				if !found {
					t.Errorf("cluster %s: no %s in namespace vc-%s; it holds %v", n, kind, n, keys(objs))
				}
			}
			// The virtual API server is given the node-port range the
			// reconciler detected on the host.
			sts, err := h.kube.AppsV1().StatefulSets("vc-"+n).Get(context.Background(), n, metav1.GetOptions{})
			if err != nil {
				t.Errorf("cluster %s: StatefulSet: %v", n, err)
			} else if k3s := containerArgs(sts.Spec.Template.Spec.Containers, "k3s"); !slices.Contains(k3s, "--service-node-port-range="+hostNodePorts) {
				t.Errorf("cluster %s: k3s runs with %v, want the host's node-port range %s", n, k3s, hostNodePorts)
			}
			pod, err := h.kube.CoreV1().Pods("vc-"+n).Get(context.Background(), n+"-0", metav1.GetOptions{})
			if err != nil {
				t.Errorf("cluster %s: control plane pod: %v", n, err)
			} else if pod.Status.Phase != corev1.PodRunning {
				t.Errorf("cluster %s: control plane pod is %s (kwok runs it), want Running", n, pod.Status.Phase)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("2 changing one cluster's spec changes only that cluster's objects", func(t *testing.T) {
		h := newHost(t, plane)
		generations := h.generations(names...)
		before := map[string]map[string]string{}
		for _, n := range names {
			before[n] = resourceVersions(h.hostObjectsOf(n))
		}
		sha := repo.CommitFiles(t, "life-b gets more CPU", map[string]string{
			clusterFile("life-b"): clusterYAML("life-b", "life", "2"),
		})
		h.requestReconcile(fleet, time.Minute)
		h.waitFleetApplied(fleet, sha, time.Minute)
		after := map[string]map[string]string{}
		for _, n := range names {
			after[n] = resourceVersions(h.hostObjectsOf(n))
		}
		for _, n := range []string{"life-a", "life-c"} {
			if diff := diffVersions(before[n], after[n]); len(diff) > 0 {
				t.Errorf("cluster %s was not changed in Git, yet on the host: %v", n, diff)
			}
		}
		if diff := diffVersions(generations, h.generations(names...)); len(diff) != 1 || !strings.HasPrefix(diff[0], "life-b ") {
			t.Errorf("only VirtualCluster life-b's spec should have changed; generations changed: %v", diff)
		}
		if diff := diffVersions(before["life-b"], after["life-b"]); len(diff) == 0 {
			t.Errorf("cluster life-b got more CPU in Git, yet none of its host objects changed")
		} else {
			t.Logf("life-b's changed objects: %v", diff)
		}
		quota, err := h.kube.CoreV1().ResourceQuotas("vc-life-b").Get(context.Background(), "life-b", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("life-b quota: %v", quota.Spec.Hard)
	})
	if t.Failed() {
		return
	}

	t.Run("3 a removed cluster is gone, with nothing labelled with it at any scope", func(t *testing.T) {
		h := newHost(t, plane)
		sha := repo.RemoveFiles(t, "life-c is no longer needed", clusterFile("life-c"))
		h.requestReconcile(fleet, 3*time.Minute)
		h.waitFleetApplied(fleet, sha, 3*time.Minute)
		if _, ok := h.virtualCluster("life-c"); ok {
			t.Errorf("VirtualCluster life-c still exists after its removal was applied")
		}
		if left := h.sweep(v1alpha1.ClusterLabel + "=life-c"); len(left) > 0 {
			t.Errorf("after the prune, objects labelled %s=life-c remain: %v", v1alpha1.ClusterLabel, keys(left))
		}
		if _, err := h.kube.CoreV1().Namespaces().Get(context.Background(), "vc-life-c", metav1.GetOptions{}); err == nil {
			t.Errorf("namespace vc-life-c still exists")
		}
		h.waitClustersReady(time.Minute, "life-a", "life-b")
	})
}

// hostObjectsOf are the host objects of a cluster: every object labelled
// with it at any scope (rendered ones, its PKI Secret, the pod and claim its
// StatefulSet made), but not its VirtualCluster, whose status records each
// revision applied.
func (h *host) hostObjectsOf(cluster string) map[string]hostObject {
	h.t.Helper()
	objs := h.sweep(labels.SelectorFromSet(labels.Set{v1alpha1.ClusterLabel: cluster}).String())
	for k, o := range objs {
		if o.Resource.Resource == "virtualclusters" {
			delete(objs, k)
		}
	}
	return objs
}

// generations maps each named VirtualCluster to its generation.
func (h *host) generations(names ...string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for _, n := range names {
		if vc, ok := h.virtualCluster(n); ok {
			out[n] = strconv.FormatInt(vc.Generation, 10)
		}
	}
	return out
}

func containerArgs(cs []corev1.Container, name string) []string {
	for _, c := range cs {
		if c.Name == name {
			return c.Args
		}
	}
	return nil
}
