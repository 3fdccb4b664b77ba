package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/localkube"
)

// fastRetries makes a reconcile that failed on a fault come back within
// seconds, as the stories wait for convergence without a manual step.
var fastRetries = []string{"--min-retry-delay=500ms", "--max-retry-delay=5s"}

// onFirst runs fault once the first event of kind what arrives on w (or
// fails the test after two minutes), then stops w.
func onFirst(t testing.TB, w watch.Interface, what watch.EventType, fault func()) {
	t.Helper()
	defer w.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended before a %s event", what)
			}
			if ev.Type == what {
				fault()
				return
			}
		case <-deadline:
			t.Fatalf("no %s event within 2m", what)
		}
	}
}

// watchFleetConfigMaps watches the ConfigMaps carrying the Fleet's labels:
// the first one is added mid-apply (namespaces go first).
func (h *host) watchFleetConfigMaps(ns string) watch.Interface {
	h.t.Helper()
	selector := labels.SelectorFromSet(labels.Set{v1alpha1.FleetNameLabel: "fleet", v1alpha1.FleetNamespaceLabel: ns}).String()
	w, err := h.kube.CoreV1().ConfigMaps("").Watch(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

// watchCluster watches one VirtualCluster: its deletion starts a prune.
func (h *host) watchCluster(name string) watch.Interface {
	h.t.Helper()
	gvr := v1alpha1.GroupVersion.WithResource("virtualclusters")
	w, err := h.meta.Resource(gvr).Watch(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		h.t.Fatal(err)
	}
	return w
}

// pkiUIDs maps each named cluster that has a PKI Secret to the Secret's UID.
func (h *host) pkiUIDs(names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		if uid := h.pkiUID(n); uid != "" {
			out[n] = uid
		}
	}
	return out
}

// assertConvergedExactlyOnce checks, once the Fleet is Ready, that each
// cluster holds exactly one namespace, control plane StatefulSet, pod and
// data claim, that the inventory lists each live object once and nothing
// that is gone, and that no PKI Secret made before the fault was replaced.
func (h *host) assertConvergedExactlyOnce(f *v1alpha1.Fleet, names []string, pkiBefore map[string]string) {
	h.t.Helper()
	h.assertInventoryLive(f)
	for _, n := range names {
		kinds := map[string]int{}
		for _, o := range h.hostObjectsOf(n) {
			kinds[o.Resource.Resource]++
		}
		for _, kind := range []string{"namespaces", "statefulsets", "pods", "persistentvolumeclaims"} {
			if kinds[kind] != 1 {
				h.t.Errorf("cluster %s has %d %s, want exactly 1", n, kinds[kind], kind)
			}
		}
	}
	for n, uid := range pkiBefore {
		if now := h.pkiUID(n); now != uid {
			h.t.Errorf("the PKI Secret of %s was replaced (%s → %q): a cluster's CAs must never change", n, uid, now)
		}
	}
}

func clusterNames(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// The host's etcd, then its API server, is killed (SIGKILL) and started
// again while warren applies a Fleet, and again while it prunes a cluster
// removed from Git. warren converges without a manual step: every cluster
// exactly once, the removed one gone with all it held, the others
// untouched, and no CA replaced. (The shared plane: it comes back with the
// same address, data and certificates, and the stories after this one run
// on it as on any other. The only story not run in parallel: Go runs it
// before the parallel ones start, so its restarts stop no other story.)
func TestTheHostControlPlaneRestartedMidReconcile(t *testing.T) {
	plane := hostPlane(t)
	for _, component := range []string{"etcd", "kube-apiserver"} {
		t.Run(component, func(t *testing.T) {
			restartMidReconcile(t, plane, component)
		})
	}
}

func restartMidReconcile(t *testing.T, plane *localkube.Plane, component string) {
	h := newHost(t, plane)
	prefix := map[string]string{"etcd": "etcd", "kube-apiserver": "apisrv"}[component]
	names := clusterNames(prefix, 4)
	repo, sha := newFleetRepo(t, t.TempDir(), prefix, prefix, names...)
	ns := "e2e-restart-" + prefix
	restart := func() {
		if err := plane.Kill(component); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := plane.Revive(ctx, component); err != nil {
			t.Fatal(err)
		}
	}
	w := h.watchFleetConfigMaps(ns)
	startReconciler(t, plane, reconcilerOptions{flags: fastRetries})
	fleet := h.createFleet(ns, fleetSpec{url: repo.FileURL()})
	onFirst(t, w, watch.Added, restart)
	pkiBefore := h.pkiUIDs(names...)

	f := h.waitFleetApplied(fleet, sha, 4*time.Minute)
	h.waitClustersReady(3*time.Minute, names...)
	h.assertConvergedExactlyOnce(f, names, pkiBefore)

	// Mid-prune: the removed cluster's VirtualCluster goes first.
	kept, removed := names[:3], names[3]
	before := h.snapshot(kept...)
	pkiBefore = h.pkiUIDs(kept...)
	w = h.watchCluster(removed)
	sha = repo.RemoveFiles(t, "remove "+removed, clusterFile(removed))
	h.annotate(fleet)
	onFirst(t, w, watch.Deleted, restart)
	f = h.waitFleetApplied(fleet, sha, 4*time.Minute)
	if left := h.sweep(v1alpha1.ClusterLabel + "=" + removed); len(left) > 0 {
		t.Errorf("objects of the removed cluster %s remain: %v", removed, keys(left))
	}
	h.assertUnchanged(before, kept...)
	h.assertConvergedExactlyOnce(f, kept, pkiBefore)
}
