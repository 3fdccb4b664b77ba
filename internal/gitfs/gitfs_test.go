package gitfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/warren-dev/warren/internal/gitfs"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/test/fleettest"
)

// A fleet kept in a sub-folder of a repository reads at an older revision
// exactly as its checkout would load, links and all.
func TestFleetAtAnOlderRevision(t *testing.T) {
	repo := t.TempDir()
	fleet := filepath.Join(repo, "platform", "fleet")
	testkit.Git(t, repo, "init", "-q", "-b", "main")
	fleettest.Write(t, repo, fleettest.Files{
		"platform/shared/b.yaml":         fleettest.Cluster("b"),
		"platform/fleet/policies/p.yaml": fleettest.Policy,
		"platform/fleet/clusters/a.yaml": fleettest.Cluster("a"),
		"platform/fleet/clusters/b.yaml": "symlink:../../shared/b.yaml", // leaves the fleet's root
		"platform/fleet/clusters/c.yaml": "symlink:a.yaml",              // stays inside
	})
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "first")
	if err := os.Remove(filepath.Join(fleet, "clusters", "a.yaml")); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, repo, "commit", "-q", "-am", "drop a")

	fsys, err := gitfs.AtRevision(fleet, "HEAD~1")
	if err != nil {
		t.Fatal(err)
	}
	r, problems, err := load.FS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Cluster("a"); !ok {
		t.Error("cluster a, deleted since, is missing at HEAD~1")
	}
	var linkProblem, dup bool
	for _, p := range problems {
		switch {
		case p.File == "clusters/b.yaml" && p.Field == "symlink":
			linkProblem = true
		case p.File == "clusters/c.yaml" && p.Field == "metadata.name":
			dup = true // c.yaml links to a.yaml: the same cluster twice
		}
	}
	if !linkProblem || !dup || len(problems) != 2 {
		t.Errorf("problems:\n%s", load.Problems(problems).Error())
	}
}

// A revision from before the fleet folder existed is an empty fleet, and a
// revision that does not exist is an error naming it.
func TestMissingFolderAndRevision(t *testing.T) {
	repo := t.TempDir()
	testkit.Git(t, repo, "init", "-q", "-b", "main")
	fleettest.Write(t, repo, fleettest.Files{"README.md": "hello\n"})
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "first")
	fleettest.Write(t, repo, fleettest.Files{"fleet/clusters/a.yaml": fleettest.Cluster("a")})
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "fleet")

	fsys, err := gitfs.AtRevision(filepath.Join(repo, "fleet"), "HEAD~1")
	if err != nil {
		t.Fatal(err)
	}
	r, problems, err := load.FS(fsys)
	if err != nil || len(problems) > 0 || len(r.Clusters) > 0 {
		t.Errorf("empty fleet: %v %v %v", r, problems, err)
	}
	if _, err := gitfs.AtRevision(repo, "v9.9.9"); err == nil {
		t.Error("unknown revision accepted")
	}
}
