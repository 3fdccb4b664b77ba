package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// A commit that removes most of a Fleet's clusters (a bad merge, a wrong
// path) is held back until the Fleet says a mass prune is meant.
func TestTheMassPruneGuardHoldsARevisionThatRemovesMostClusters(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"mass-a", "mass-b", "mass-c", "mass-d"}
	repo, sha := newFleetRepo(t, t.TempDir(), "mass", "mass", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-mass", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	sha = repo.RemoveFiles(t, "keep only mass-a", clusterFile("mass-b"), clusterFile("mass-c"), clusterFile("mass-d"))
	f := h.requestReconcile(fleet, time.Minute)
	if !strings.HasSuffix(f.Status.LastAttemptedRevision, sha) {
		t.Fatalf("the reconcile did not see commit %s: %s", sha, fleetState(f))
	}
	msg := fleetNotReady(t, f, "3 of 4", "mass-b", "allowMassPrune")
	t.Logf("Fleet says: %s", msg)
	if c := apimeta.FindStatusCondition(f.Status.Conditions, v1alpha1.PruneBlockedReason); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Fleet should have condition PruneBlocked=True: %s", fleetState(f))
	}
	h.assertUnchanged(before, names...)
	// Held back means held back: a later poll of the same revision too.
	h.requestReconcile(fleet, time.Minute)
	h.assertUnchanged(before, names...)

	// The team meant it.
	var live v1alpha1.Fleet
	if err := h.c.Get(context.Background(), fleet, &live); err != nil {
		t.Fatal(err)
	}
	patched := live.DeepCopy()
	patched.Spec.AllowMassPrune = true
	if err := h.c.Patch(context.Background(), patched, client.MergeFrom(&live)); err != nil {
		t.Fatal(err)
	}
	f = h.waitFleetApplied(fleet, sha, 3*time.Minute)
	if c := apimeta.FindStatusCondition(f.Status.Conditions, v1alpha1.PruneBlockedReason); c != nil {
		t.Errorf("PruneBlocked should be gone once the prune is allowed: %s", fleetState(f))
	}
	for _, n := range names[1:] {
		if _, ok := h.virtualCluster(n); ok {
			t.Errorf("VirtualCluster %s remains after the allowed mass prune", n)
		}
		if left := h.sweep(v1alpha1.ClusterLabel + "=" + n); len(left) > 0 {
			t.Errorf("objects of %s remain: %v", n, keys(left))
		}
	}
	h.waitClustersReady(time.Minute, "mass-a")
}
