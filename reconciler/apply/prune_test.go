package apply

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/localkube"
)

// A cluster removed from Git on a host that runs its controllers: its
// namespace and everything in it are pruned, warren waits until the
// namespace is gone, and a sweep of every kind finds nothing labelled with
// that cluster; the other cluster is untouched.
func TestPrunedClusterLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{ControllerManager: true})
	c, err := client.New(plane.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(c, Owner{Namespace: "warren-system", Name: "fleet"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	render := func(names ...string) []string {
		var docs []string
		for _, n := range names {
			docs = append(docs, clusterObjects(n)...)
		}
		return docs
	}
	first, err := a.Apply(ctx, objects(t, render("alpha", "beta")...), nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.Apply(ctx, objects(t, render("alpha")...), first.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	stale := Stale(first.Inventory, second.Inventory)
	if len(stale) != len(clusterObjects("beta")) {
		t.Fatalf("stale %d entries, want the %d of beta", len(stale), len(clusterObjects("beta")))
	}
	for _, e := range stale {
		if e.Cluster != "beta" {
			t.Fatalf("stale entry %v is not beta's", e)
		}
	}
	pruned, err := a.Prune(ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := a.WaitForDeletion(waitCtx, pruned.Deleted); err != nil {
		t.Fatal(err)
	}

	var left []ObjectRef
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		left, err = Sweep(ctx, plane.Config, map[string]string{v1alpha1.ClusterLabel: "beta"})
		return err == nil && len(left) == 0, err
	})
	if err != nil {
		t.Fatalf("objects labelled with beta remain: %v (%v)", left, err)
	}
	alpha, err := Sweep(ctx, plane.Config, map[string]string{v1alpha1.ClusterLabel: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	// Controllers copy a Service's labels onto its Endpoints and
	// EndpointSlices, so alpha has more labelled objects than it rendered;
	// every rendered one must still be there.
	have := map[string]bool{}
	for _, r := range alpha {
		have[r.Kind+"/"+r.Namespace+"/"+r.Name] = true
	}
	for _, u := range objects(t, clusterObjects("alpha")...) {
		if key := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName(); !have[key] {
			t.Errorf("alpha's %s is gone", key)
		}
	}
}

// An object already gone when the prune reaches it (its namespace was
// deleted first, or someone deleted it) counts as deleted, not as a failure.
func TestPruneOfAnObjectAlreadyGone(t *testing.T) {
	f := newFixture(t, "gone")
	ns := "gone-a"
	f.apply(namespace(ns), configMap(ns, "one", "1"), configMap(ns, "two", "2"))
	previous := f.inv
	f.apply(namespace(ns))
	if err := f.kube.CoreV1().ConfigMaps(ns).Delete(f.ctx, "one", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.applier.Prune(f.ctx, Stale(previous, f.inv))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 2 || len(res.Skipped) != 0 {
		t.Fatalf("deleted %v, skipped %v; want both ConfigMaps deleted", res.Deleted, res.Skipped)
	}
}
