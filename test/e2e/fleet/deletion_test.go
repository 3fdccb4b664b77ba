package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/testkit"
)

// deletionBound is how long deleting a Fleet may take: pruning waits for
// each removed cluster's namespace to be gone, which the host's namespace
// controller does in seconds here.
const deletionBound = 2 * time.Minute

// deleteFleet deletes the Fleet and waits, within deletionBound, until it is
// gone from the API server (its finalizer removed).
func (h *host) deleteFleet(key client.ObjectKey) {
	h.t.Helper()
	f := &v1alpha1.Fleet{}
	f.Namespace, f.Name = key.Namespace, key.Name
	if err := h.c.Delete(context.Background(), f); err != nil {
		h.t.Fatalf("deleting Fleet %s: %v", key, err)
	}
	testkit.Eventually(h.t, deletionBound, "Fleet "+key.String()+" gone after its deletion", func() (bool, string) {
		var live v1alpha1.Fleet
		err := h.c.Get(context.Background(), key, &live)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		if err != nil {
			return false, err.Error()
		}
		return false, "finalizers [" + strings.Join(live.Finalizers, ",") + "]; " + fleetState(&live)
	})
}

// setSuspend sets the Fleet's spec.suspend.
func (h *host) setSuspend(key client.ObjectKey, suspend bool) {
	h.t.Helper()
	live := h.fleet(key)
	patched := live.DeepCopy()
	patched.Spec.Suspend = suspend
	if err := h.c.Patch(context.Background(), patched, client.MergeFrom(live)); err != nil {
		h.t.Fatalf("suspending Fleet %s: %v", key, err)
	}
}

// assertFleetLeftNothing checks that no object on the host carries the
// Fleet's labels and that none of the named clusters remains.
func (h *host) assertFleetLeftNothing(key client.ObjectKey, names ...string) {
	h.t.Helper()
	selector := labels.SelectorFromSet(labels.Set{v1alpha1.FleetNameLabel: key.Name, v1alpha1.FleetNamespaceLabel: key.Namespace}).String()
	if left := h.sweep(selector); len(left) > 0 {
		h.t.Errorf("objects of deleted Fleet %s remain: %v", key, keys(left))
	}
	for _, n := range names {
		if _, ok := h.virtualCluster(n); ok {
			h.t.Errorf("VirtualCluster %s of deleted Fleet %s remains", n, key)
		}
	}
}

// removeClustersAtEnd deletes the named VirtualClusters (and so, through
// garbage collection, all they hold) when the test ends: a story that keeps
// clusters on purpose must not leave them to the next one.
func (h *host) removeClustersAtEnd(names ...string) {
	h.t.Cleanup(func() {
		for _, n := range names {
			vc := &v1alpha1.VirtualCluster{}
			vc.Name = n
			_ = client.IgnoreNotFound(h.c.Delete(context.Background(), vc))
		}
	})
}

// Deleting an active Fleet deletes its clusters, everything they hold, and
// then the Fleet itself, within a bounded time.
func TestDeletingAnActiveFleetRemovesItsClustersAndCompletes(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"del-a", "del-b"}
	repo, sha := newFleetRepo(t, t.TempDir(), "del", "del", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-del", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)

	h.deleteFleet(fleet)
	h.assertFleetLeftNothing(fleet, names...)
}

// A suspended Fleet applies and prunes nothing, and its deletion is no
// exception: the Fleet goes, its clusters stay exactly as they were.
func TestDeletingASuspendedFleetKeepsItsClusters(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"delsus-a", "delsus-b"}
	repo, sha := newFleetRepo(t, t.TempDir(), "delsus", "delsus", names...)
	rec := startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-delsus", fleetSpec{url: repo.FileURL()})
	h.removeClustersAtEnd(names...)
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	h.setSuspend(fleet, true)
	h.deleteFleet(fleet)
	if rec.Exited() {
		t.Fatal("the reconciler exited")
	}
	h.assertUnchanged(before, names...)
	for _, n := range names {
		if vc := h.mustCluster(n); !vc.DeletionTimestamp.IsZero() {
			t.Errorf("VirtualCluster %s is being deleted", n)
		}
	}
}

// Two Fleets claim one cluster; the first applied it, the second reports a
// conflict. Deleting the second removes only its own cluster and leaves the
// shared one to the first; deleting the first then removes the rest. Each
// deletion completes within a bounded time.
func TestDeletingFleetsThatClaimTheSameClusterCompletes(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	firstRepo, sha := newFleetRepo(t, t.TempDir(), "delsh-1", "delsh", "delsh-shared", "delsh-one")
	secondRepo, sha2 := newFleetRepo(t, t.TempDir(), "delsh-2", "delsh", "delsh-shared", "delsh-two")
	startReconciler(t, plane, reconcilerOptions{})
	first := h.createFleet("e2e-delsh-1", fleetSpec{url: firstRepo.FileURL()})
	h.waitFleetApplied(first, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, "delsh-shared", "delsh-one")

	second := h.createFleet("e2e-delsh-2", fleetSpec{url: secondRepo.FileURL()})
	testkit.Eventually(t, 2*time.Minute, "the second Fleet to apply its own cluster and report the shared one", func() (bool, string) {
		f := h.fleet(second)
		_, own := h.virtualCluster("delsh-two")
		return own && strings.HasSuffix(f.Status.LastAttemptedRevision, sha2) && hasReason(f.Status.Conditions, "Conflict"), fleetState(f)
	})
	h.waitClustersReady(2*time.Minute, "delsh-two")
	shared := h.snapshot("delsh-shared", "delsh-one")

	h.deleteFleet(second)
	h.assertFleetLeftNothing(second, "delsh-two")
	h.assertUnchanged(shared, "delsh-shared", "delsh-one")
	if vc := h.mustCluster("delsh-shared"); vc.Labels[v1alpha1.FleetNamespaceLabel] != first.Namespace {
		t.Errorf("VirtualCluster delsh-shared changed hands: labels %v", vc.Labels)
	}

	h.deleteFleet(first)
	h.assertFleetLeftNothing(first, "delsh-shared", "delsh-one")
}

// A Fleet whose deletion policy is Orphan keeps its clusters when it is
// deleted, on purpose, and says so in an event.
func TestDeletingAFleetWithTheOrphanPolicyKeepsItsClusters(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"delorph-a"}
	repo, sha := newFleetRepo(t, t.TempDir(), "delorph", "delorph", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-delorph", fleetSpec{url: repo.FileURL()})
	h.removeClustersAtEnd(names...)
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	live := h.fleet(fleet)
	patched := live.DeepCopy()
	patched.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
	if err := h.c.Patch(context.Background(), patched, client.MergeFrom(live)); err != nil {
		t.Fatal(err)
	}
	h.deleteFleet(fleet)
	h.assertUnchanged(before, names...)
	testkit.Eventually(t, time.Minute, "a ClustersKept event", func() (bool, string) {
		evs := h.events(fleet, "ClustersKept")
		return len(evs) > 0 && strings.Contains(evs[0], "Orphan"), strings.Join(evs, " | ")
	})
}

// Deleting the namespace a Fleet lives in deletes the Fleet, and so its
// clusters: the namespace controller deletes the Fleet's inventory
// ConfigMaps along with everything else there, and their finalizer keeps
// them readable until the Fleet has pruned what they list. The namespace
// then goes, leaving nothing behind.
func TestDeletingAFleetsNamespaceRemovesItsClusters(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"nsdel-a", "nsdel-b"}
	repo, sha := newFleetRepo(t, t.TempDir(), "nsdel", "nsdel", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-nsdel", fleetSpec{url: repo.FileURL()})
	f := h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)

	inv := f.Status.Inventory
	if inv == nil || len(inv.Entries) > 0 || len(inv.ConfigMaps) == 0 || inv.Objects == 0 || inv.Clusters != len(names) {
		t.Fatalf("status.inventory = %+v, want a count of objects, %d clusters and the ConfigMaps that list them, no entries", inv, len(names))
	}
	if got := len(h.inventory(f)); got != inv.Objects {
		t.Errorf("the inventory ConfigMaps list %d objects, the status counts %d", got, inv.Objects)
	}

	ns := &corev1.Namespace{}
	ns.Name = fleet.Namespace
	if err := h.c.Delete(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, deletionBound, "namespace "+fleet.Namespace+" gone", func() (bool, string) {
		err := h.c.Get(context.Background(), client.ObjectKeyFromObject(ns), ns)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("%v %+v", err, ns.Status.Conditions)
	})
	h.assertFleetLeftNothing(fleet, names...)
}
