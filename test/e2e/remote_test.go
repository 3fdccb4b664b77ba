package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/gitserver"
)

// The Git server goes away: the reconciler deletes nothing, says why, and
// catches up with what was committed meanwhile once the server is back.
func TestAnUnreachableRemoteDeletesNothing(t *testing.T) {
	plane := hostPlane(t)
	h := newHost(t, plane)
	gitRoot := t.TempDir()
	server := gitserver.Start(t, gitRoot, gitserver.Options{})
	names := []string{"gone-a", "gone-b"}
	repo, sha := newFleetRepo(t, gitRoot, "gone", "gone", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-gone", fleetSpec{url: server.URL(repo.Name)})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	server.Stop()
	// Meanwhile the team removes one cluster and adds another; the server
	// being down, the reconciler cannot know.
	repo.RemoveFiles(t, "gone-b is no longer needed", clusterFile("gone-b"))
	sha = repo.CommitFiles(t, "gone-c", map[string]string{clusterFile("gone-c"): clusterYAML("gone-c", "gone", "1")})
	for range 2 { // a second attempt, after a failed one, deletes nothing either
		f := h.requestReconcile(fleet, time.Minute)
		msg := fleetNotReady(t, f)
		if !strings.Contains(msg, "127.0.0.1") {
			t.Errorf("the Fleet's message should name the remote it could not reach: %s", msg)
		}
		if !hasReason(f.Status.Conditions, "GitOperationFailed") {
			t.Errorf("Fleet Ready reason should be GitOperationFailed: %s", fleetState(f))
		}
		h.assertUnchanged(before, names...)
	}

	if err := server.Resume(); err != nil {
		t.Fatal(err)
	}
	h.requestReconcile(fleet, 2*time.Minute)
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, "gone-a", "gone-c")
	if _, ok := h.virtualCluster("gone-b"); ok {
		t.Errorf("gone-b, removed while the remote was down, was not pruned once it came back")
	}
}
