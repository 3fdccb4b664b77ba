package gitserver

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-dev/warren/test/testkit"
)

// A repository committed to with the CLI can be cloned and pushed to over
// smart HTTP with basic auth, refuses wrong credentials, and is unreachable
// while the server is stopped.
func TestServeCloneAndPushOverHTTP(t *testing.T) {
	root := t.TempDir()
	repo := NewRepo(t, root, "fleet")
	first := repo.CommitFiles(t, "first", map[string]string{"clusters/a.yaml": "name: a\n"})

	srv := Start(t, root, Options{Username: "alice", Password: "s3cret"})
	authed := strings.Replace(srv.URL("fleet"), "http://", "http://alice:s3cret@", 1)

	clone := filepath.Join(t.TempDir(), "clone")
	if _, err := testkit.RunGit(context.Background(), "", "clone", "--quiet", authed, clone); err != nil {
		t.Fatalf("clone with credentials: %v", err)
	}
	if got, _ := testkit.RunGit(context.Background(), clone, "rev-parse", "HEAD"); got != first {
		t.Fatalf("cloned HEAD = %s, want %s", got, first)
	}

	if _, err := testkit.RunGit(context.Background(), "", "clone", "--quiet", srv.URL("fleet"), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("clone without credentials succeeded")
	}

	if _, err := testkit.RunGit(context.Background(), clone, "commit", "--quiet", "--allow-empty", "-m", "from clone"); err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.RunGit(context.Background(), clone, "push", "--quiet", "origin", "main"); err != nil {
		t.Fatalf("push over HTTP: %v", err)
	}
	pushed, _ := testkit.RunGit(context.Background(), clone, "rev-parse", "HEAD")
	if got := repo.Head(t, "main"); got != pushed {
		t.Fatalf("bare main = %s, want pushed %s", got, pushed)
	}
	repo.Pull(t)

	srv.Stop()
	if _, err := testkit.RunGit(context.Background(), clone, "fetch", "--quiet", "origin"); err == nil {
		t.Fatal("fetch from a stopped server succeeded")
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.RunGit(context.Background(), clone, "fetch", "--quiet", "origin"); err != nil {
		t.Fatalf("fetch after resume: %v", err)
	}
}
