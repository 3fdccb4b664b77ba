package source

import (
	"context"
	"strings"
	"testing"

	"github.com/warren-dev/warren/test/gitserver"
)

// Over SSH with a key and the server's host key in known_hosts, warren
// fetches and pushes; with known_hosts naming another key for that host,
// it refuses to talk to the server at all.
func TestSSHFetchAndPushCheckTheHostKey(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	head := repo.CommitFiles(t, "init", map[string]string{"clusters/a.yaml": "name: a\n"})
	key, pub := gitserver.NewSSHKey(t)
	srv := gitserver.StartSSH(t, root, pub)

	auth, err := AuthFromSecret(map[string][]byte{"identity": key, "known_hosts": srv.KnownHosts})
	if err != nil {
		t.Fatal(err)
	}
	src, err := Open(Options{URL: srv.URL("fleet"), CacheDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatalf("fetch over ssh: %v", err)
	}
	if snap.Commit != head {
		t.Fatalf("commit %s, want %s", snap.Commit, head)
	}
	res, err := src.Push(ctx, Commit{Branch: "main", Author: warrenAuthor, Message: "kubeconfigs: add a",
		Write: map[string][]byte{"kubeconfigs/a.yaml": []byte("sealed\n")}})
	if err != nil {
		t.Fatalf("push over ssh: %v", err)
	}
	if repo.Head(t, "main") != res.Commit {
		t.Fatal("push over ssh did not land")
	}

	// Another server's key for the same address: a man in the middle.
	_, otherPub := gitserver.NewSSHKey(t)
	impostor := gitserver.StartSSH(t, root, otherPub)
	wrongHosts := strings.Replace(string(impostor.KnownHosts), impostor.Addr[strings.LastIndex(impostor.Addr, ":"):], srv.Addr[strings.LastIndex(srv.Addr, ":"):], 1)
	bad, err := Open(Options{URL: srv.URL("fleet"), CacheDir: t.TempDir(),
		Auth: &Auth{SSHIdentity: key, KnownHosts: []byte(wrongHosts)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Fetch(ctx, Ref{Branch: "main"}); err == nil {
		t.Fatal("fetch succeeded with a known_hosts entry for another host key")
	} else if !strings.Contains(err.Error(), "key") {
		t.Fatalf("error does not mention the host key: %v", err)
	} else {
		t.Logf("refused as expected: %v", err)
	}
}
