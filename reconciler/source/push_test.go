package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/warren-dev/warren/test/gitserver"
)

var warrenAuthor = Signature{Name: "warren", Email: "warren@warren.dev"}

// warren commits kubeconfigs over smart HTTPS with basic auth: one commit with its author and
// message, a clean fsck; the same content again makes no commit; a removal
// is a commit of its own.
func TestPushCommitsOnceAndStaysQuiet(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "clusters", map[string]string{"clusters/a.yaml": "name: a\n", "kubeconfigs/old.yaml": "old\n"})
	srv := gitserver.Start(t, root, gitserver.Options{Username: "warren", Password: "pw", TLS: true})
	src, err := Open(Options{URL: srv.URL("fleet"), CacheDir: t.TempDir(), Auth: &Auth{Username: "warren", Password: "pw", CABundle: srv.CACertPEM()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatal(err)
	}

	res, err := src.Push(ctx, Commit{
		Branch: "main", Author: warrenAuthor, Message: "kubeconfigs: add a (new cluster)",
		Write:  map[string][]byte{"kubeconfigs/a.yaml": []byte("sealed: a\n"), "kubeconfigs/nested/b.yaml": []byte("sealed: b\n")},
		Delete: []string{"kubeconfigs/old.yaml"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || res.Attempts != 1 || repo.Head(t, "main") != res.Commit {
		t.Fatalf("push result %+v, remote main %s", res, repo.Head(t, "main"))
	}
	if got := repo.Show(t, "main", "kubeconfigs/a.yaml"); got != "sealed: a" {
		t.Fatalf("kubeconfigs/a.yaml = %q", got)
	}
	if got := repo.Show(t, "main", "kubeconfigs/nested/b.yaml"); got != "sealed: b" {
		t.Fatalf("kubeconfigs/nested/b.yaml = %q", got)
	}
	if got := repo.Show(t, "main", "clusters/a.yaml"); got != "name: a" {
		t.Fatalf("untouched file changed: %q", got)
	}
	if _, err := testkit.RunGit(ctx, repo.BareDir, "cat-file", "-e", "main:kubeconfigs/old.yaml"); err == nil {
		t.Fatal("kubeconfigs/old.yaml still there")
	}
	if got, _ := testkit.RunGit(ctx, repo.BareDir, "log", "-1", "--format=%an <%ae>|%s", "main"); got != "warren <warren@warren.dev>|kubeconfigs: add a (new cluster)" {
		t.Fatalf("commit author|subject = %q", got)
	}
	if out, err := testkit.RunGit(ctx, repo.BareDir, "fsck", "--strict"); err != nil {
		t.Fatalf("git fsck: %v %s", err, out)
	}

	again, err := src.Push(ctx, Commit{Branch: "main", Author: warrenAuthor, Message: "again",
		Write: map[string][]byte{"kubeconfigs/a.yaml": []byte("sealed: a\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Unchanged || repo.Head(t, "main") != res.Commit {
		t.Fatalf("unchanged push made a commit: %+v", again)
	}

	gone, err := src.Push(ctx, Commit{Branch: "main", Author: warrenAuthor, Message: "kubeconfigs: remove a (cluster removed)",
		Delete: []string{"kubeconfigs/a.yaml", "kubeconfigs/nested/b.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.RunGit(ctx, repo.BareDir, "cat-file", "-e", gone.Commit+":kubeconfigs"); err == nil {
		t.Fatal("empty kubeconfigs folder still in the tree")
	}
}

// Someone pushes an unrelated commit between warren's fetch and its push:
// the push is refused as non-fast-forward, warren makes its change again on
// the new tip and lands on top, without force.
func TestPushLandsOnTopOfAConcurrentCommit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "init", map[string]string{"clusters/a.yaml": "name: a\n"})
	srv := gitserver.Start(t, root, gitserver.Options{})
	src := open(t, srv.URL("fleet"), nil)

	var theirs string
	src.beforePush = func() {
		if theirs == "" {
			theirs = repo.CommitFiles(t, "unrelated", map[string]string{"clusters/b.yaml": "name: b\n"})
		}
	}
	res, err := src.Push(ctx, Commit{Branch: "main", Author: warrenAuthor, Message: "kubeconfigs: add a",
		Write: map[string][]byte{"kubeconfigs/a.yaml": []byte("sealed\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Fatalf("attempts = %d, want 2", res.Attempts)
	}
	if parent, _ := testkit.RunGit(ctx, repo.BareDir, "rev-parse", "main^"); parent != theirs {
		t.Fatalf("warren's commit parent = %s, want the concurrent commit %s", parent, theirs)
	}
	if got := repo.Show(t, "main", "clusters/b.yaml"); got != "name: b" {
		t.Fatalf("concurrent commit lost: %q", got)
	}
	if _, err := testkit.RunGit(ctx, repo.BareDir, "fsck", "--strict"); err != nil {
		t.Fatal(err)
	}
}

// A protected branch (a hook that refuses every push) is a rejection with
// the remote's message, not a retry loop.
func TestPushRejectedByRemote(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "init", map[string]string{"README": "x\n"})
	hook := filepath.Join(repo.BareDir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := gitserver.Start(t, root, gitserver.Options{})
	src := open(t, srv.URL("fleet"), nil)
	_, err := src.Push(ctx, Commit{Branch: "main", Author: warrenAuthor, Message: "m", Write: map[string][]byte{"f": []byte("x")}})
	var rejected *PushRejectedError
	if !errors.As(err, &rejected) {
		t.Fatalf("got %v, want a PushRejectedError", err)
	}
	if !strings.Contains(err.Error(), "main") {
		t.Fatalf("rejection does not name the branch: %v", err)
	}
	if !strings.Contains(rejected.Reason, "main is protected") {
		t.Fatalf("rejection does not carry the remote's message: %q", rejected.Reason)
	}
}

// Paths that would leave the repository or touch .git are refused before
// anything is fetched.
func TestPushRefusesUnsafePaths(t *testing.T) {
	src := open(t, "file:///nonexistent", nil)
	for _, p := range []string{"../x", "/abs", ".git/config", "a/../b", "a//b"} {
		_, err := src.Push(context.Background(), Commit{Branch: "main", Author: warrenAuthor, Message: "m", Write: map[string][]byte{p: nil}})
		if err == nil || !strings.Contains(err.Error(), "path") {
			t.Fatalf("path %q: got %v", p, err)
		}
	}
}
