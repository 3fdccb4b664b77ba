package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fluxcd/pkg/apis/meta"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/testkit"
)

// forcePush moves the repository's main branch to commit, as a force push by
// the remote's owner would (the test remote refuses non-fast-forward
// pushes), and brings the working clone along.
func (r *fleetRepo) forcePush(t testing.TB, commit string) {
	t.Helper()
	if _, err := testkit.RunGit(context.Background(), r.BareDir, "update-ref", "refs/heads/main", commit); err != nil {
		t.Fatal(err)
	}
	r.Git(t, "fetch", "--quiet", "origin")
	r.Git(t, "reset", "--quiet", "--hard", "origin/main")
}

// events lists the messages of the Fleet's events with reason.
func (h *host) events(key client.ObjectKey, reason string) []string {
	h.t.Helper()
	list, err := h.kube.CoreV1().Events(key.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Fleet,involvedObject.name=" + key.Name + ",reason=" + reason,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Message)
	}
	return out
}

// The branch is force-pushed back to a commit older than anything the
// reconciler's shallow cache holds. warren fetches what it needs at the
// first attempt, applies the older revision, and says it was a rewind,
// naming both revisions and what it removes. A rewind that removes most
// clusters is held back by the mass-prune guard like any other revision.
func TestARewindBelowTheShallowCacheIsFetchedAndReported(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"rw-a", "rw-b", "rw-c"}
	repo, old := newFleetRepo(t, t.TempDir(), "rw", "rw", names...)
	// The Fleet is made after the second commit: its first, shallow
	// fetch holds that commit and not its parent.
	newer := repo.CommitFiles(t, "add rw-d", map[string]string{clusterFile("rw-d"): clusterYAML("rw-d", "rw", "1")})
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-rw", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, newer, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, append(names, "rw-d")...)
	before := h.snapshot(names...)

	repo.forcePush(t, old)
	f := h.requestReconcile(fleet, 3*time.Minute)
	if !strings.HasSuffix(f.Status.LastAttemptedRevision, old) || hasReason(f.Status.Conditions, "GitOperationFailed") {
		t.Fatalf("the first reconcile after the rewind did not fetch %s: %s", old, fleetState(f))
	}
	f = h.waitFleetApplied(fleet, old, 2*time.Minute)
	msg := apimeta.FindStatusCondition(f.Status.Conditions, meta.ReadyCondition).Message
	for _, want := range []string{"main@sha1:" + old, "main@sha1:" + newer, "rewinds", "1 cluster(s) to delete (rw-d)", "0 to create", "3 to keep"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the Fleet's Ready message should say %q: %s", want, msg)
		}
	}
	t.Logf("Fleet says: %s", msg)
	testkit.Eventually(t, time.Minute, "a Rewound event naming both revisions", func() (bool, string) {
		evs := h.events(fleet, "Rewound")
		for _, e := range evs {
			if strings.Contains(e, old) && strings.Contains(e, newer) && strings.Contains(e, "rw-d") {
				return true, ""
			}
		}
		return false, strings.Join(evs, " | ")
	})
	if _, ok := h.virtualCluster("rw-d"); ok {
		t.Errorf("rw-d, which only the rewound commit had, was not pruned")
	}
	h.assertUnchanged(before, names...)

	// Four more clusters, then a rewind that would remove four of seven:
	// held back, and said to be a rewind.
	more := []string{"rw-e", "rw-f", "rw-g", "rw-h"}
	files := map[string]string{}
	for _, n := range more {
		files[clusterFile(n)] = clusterYAML(n, "rw", "1")
	}
	wide := repo.CommitFiles(t, "four more", files)
	h.annotate(fleet)
	h.waitFleetApplied(fleet, wide, 3*time.Minute)
	h.waitClustersReady(2*time.Minute, more...)
	all := append(append([]string{}, names...), more...)
	before = h.snapshot(all...)

	repo.forcePush(t, old)
	f = h.requestReconcile(fleet, 2*time.Minute)
	msg = fleetNotReady(t, f, "rewinds", "main@sha1:"+wide, "4 of 7", "allowMassPrune")
	t.Logf("Fleet says: %s", msg)
	if c := apimeta.FindStatusCondition(f.Status.Conditions, v1alpha1.PruneBlockedReason); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Fleet should have PruneBlocked=True: %s", fleetState(f))
	}
	if !strings.HasSuffix(f.Status.LastAppliedRevision, wide) {
		t.Errorf("a held-back rewind moved status.lastAppliedRevision: %s", fleetState(f))
	}
	h.assertUnchanged(before, all...)
}
