package e2e

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/testkit"
)

// freeze stops the process (SIGSTOP) as a long pause would (a node under
// pressure, a stop-the-world stall): it renews its lease no more and knows
// nothing of it.
func (r *reconcilerProcess) freeze() { r.signal(syscall.SIGSTOP) }

// thaw lets a frozen process run again (SIGCONT).
func (r *reconcilerProcess) thaw() { r.signal(syscall.SIGCONT) }

func (r *reconcilerProcess) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signalling warren-reconciler: %v", err)
	}
}

// leads reports whether the process, since it last started, says it
// acquired the lease.
func (r *reconcilerProcess) leads() bool {
	data, err := os.ReadFile(r.logPath)
	if err != nil {
		return false
	}
	log := string(data)
	if i := strings.LastIndex(log, "---- start "); i >= 0 {
		log = log[i:]
	}
	return strings.Contains(strings.ToLower(log), "successfully acquired lease")
}

// waitLeader waits until one of the replicas leads and returns it first.
func waitLeader(t testing.TB, a, b *reconcilerProcess) (leader, follower *reconcilerProcess) {
	t.Helper()
	testkit.Eventually(t, time.Minute, "a replica to lead", func() (bool, string) { return a.leads() || b.leads(), "" })
	if a.leads() {
		return a, b
	}
	return b, a
}

// Two replicas of warren-reconciler elect a leader. The leader is frozen
// (SIGSTOP) mid-apply, past its lease; the other replica takes over and
// converges. Thawed, the old leader writes nothing and exits by itself (its
// Deployment would restart it as a follower). Then the new leader is frozen
// mid-prune, the restarted replica finishes the prune, and the frozen one,
// thawed, again writes nothing. No object is written twice, no prune is
// lost, nothing is duplicated.
func TestALeaderLosingItsLeaseMidReconcileWritesNothingTwice(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	ns := "e2e-lease"
	names := clusterNames("lease", 4)
	repo, sha := newFleetRepo(t, t.TempDir(), "lease", "lease", names...)
	// The Lease lives in the Fleet's namespace: it must be there first.
	if err := h.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	election := append([]string{"--enable-leader-election", "--leader-election-namespace=" + ns,
		"--leader-election-lease-duration=6s", "--leader-election-renew-deadline=4s", "--leader-election-retry-period=1s"}, fastRetries...)
	leader, follower := waitLeader(t, startReconciler(t, plane, reconcilerOptions{flags: election}),
		startReconciler(t, plane, reconcilerOptions{flags: election}))
	fleetSelector := labels.SelectorFromSet(labels.Set{v1alpha1.FleetNameLabel: "fleet", v1alpha1.FleetNamespaceLabel: ns}).String()

	w := h.watchFleetConfigMaps(ns)
	key := h.createFleet(ns, fleetSpec{url: repo.FileURL()})
	onFirst(t, w, watch.Added, leader.freeze)
	f := h.waitFleetApplied(key, sha, 4*time.Minute)
	h.waitClustersReady(3*time.Minute, names...)
	if !follower.leads() {
		t.Fatal("the Fleet converged, but the second replica never led")
	}
	h.assertConvergedExactlyOnce(f, names, nil)
	h.staleLeaderWritesNothing(leader, key, fleetSelector)

	// The old leader comes back as a follower; the new one is frozen
	// mid-prune, and the follower completes the prune.
	leader.Restart()
	leader, follower = follower, leader
	kept, removed := names[:3], names[3]
	before := h.snapshot(kept...)
	w = h.watchCluster(removed)
	sha = repo.RemoveFiles(t, "remove "+removed, clusterFile(removed))
	h.annotate(key)
	onFirst(t, w, watch.Deleted, leader.freeze)
	f = h.waitFleetApplied(key, sha, 4*time.Minute)
	if !follower.leads() {
		t.Fatal("the prune completed, but the restarted replica never led")
	}
	if left := h.sweep(v1alpha1.ClusterLabel + "=" + removed); len(left) > 0 {
		t.Errorf("objects of the removed cluster %s remain: %v", removed, keys(left))
	}
	h.assertUnchanged(before, kept...)
	h.assertConvergedExactlyOnce(f, kept, nil)
	h.staleLeaderWritesNothing(leader, key, fleetSelector)
}

// staleLeaderWritesNothing thaws a frozen former leader and checks that it
// exits by itself, having written nothing: every object of the Fleet and
// the Fleet itself keep their resourceVersions.
func (h *host) staleLeaderWritesNothing(stale *reconcilerProcess, key client.ObjectKey, fleetSelector string) {
	h.t.Helper()
	objects := resourceVersions(h.sweep(fleetSelector))
	fleetVersion := h.fleet(key).ResourceVersion
	stale.thaw()
	testkit.Eventually(h.t, time.Minute, "the thawed former leader to exit by itself", func() (bool, string) {
		return stale.Exited(), "still running"
	})
	if diff := diffVersions(objects, resourceVersions(h.sweep(fleetSelector))); len(diff) > 0 {
		h.t.Errorf("host objects changed after the former leader was thawed: %v", diff)
	}
	if f := h.fleet(key); f.ResourceVersion != fleetVersion {
		h.t.Errorf("the Fleet was written after the former leader was thawed: %s", fleetState(f))
	}
}
