package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/testkit"
)

func readFile(t *testing.T, snap *Snapshot, rel string) string {
	t.Helper()
	p, err := snap.Join(rel)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func open(t *testing.T, url string, auth *Auth) *Repository {
	t.Helper()
	r, err := Open(Options{URL: url, Auth: auth, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A fleet on file:// follows its branch: each new commit is a new revision
// named <branch>@sha1:<hex>, fetched shallow (older history never lands in
// the cache), and an unchanged branch gives back the same checkout.
func TestFetchFollowsBranchShallowOverFile(t *testing.T) {
	ctx := context.Background()
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	first := repo.CommitFiles(t, "one cluster", map[string]string{"clusters/a.yaml": "name: a\n"})

	src := open(t, repo.FileURL(), nil)
	snap, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "main@sha1:" + first; snap.Revision != want {
		t.Fatalf("revision = %q, want %q", snap.Revision, want)
	}
	if got := readFile(t, snap, "clusters/a.yaml"); got != "name: a\n" {
		t.Fatalf("clusters/a.yaml = %q", got)
	}

	second := repo.CommitFiles(t, "second cluster", map[string]string{"clusters/b.yaml": "name: b\n"})
	snap2, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Commit != second || snap2.Dir == snap.Dir {
		t.Fatalf("second fetch: commit %s in %s, want %s in a new folder", snap2.Commit, snap2.Dir, second)
	}
	if got := readFile(t, snap2, "clusters/b.yaml"); got != "name: b\n" {
		t.Fatalf("clusters/b.yaml = %q", got)
	}

	// Shallow: the cache holds the commits it was asked for and no history.
	third := repo.CommitFiles(t, "third", map[string]string{"clusters/c.yaml": "name: c\n"})
	fresh := open(t, repo.FileURL(), nil)
	if _, err := fresh.Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.repo.CommitObject(plumbing.NewHash(first)); err == nil {
		t.Fatal("a fresh shallow fetch holds the first commit; want only the tip")
	}
	if _, err := fresh.repo.CommitObject(plumbing.NewHash(third)); err != nil {
		t.Fatalf("tip commit missing: %v", err)
	}

	again, err := fresh.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Commit != third {
		t.Fatalf("unchanged branch gave %s, want %s", again.Commit, third)
	}
}

// A local path works like file://, and an empty ref follows the remote's
// default branch.
func TestFetchLocalPathDefaultBranch(t *testing.T) {
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	head := repo.CommitFiles(t, "init", map[string]string{"README": "hi\n"})
	snap, err := open(t, repo.BareDir, nil).Fetch(context.Background(), Ref{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "main@sha1:" + head; snap.Revision != want {
		t.Fatalf("revision = %q, want %q", snap.Revision, want)
	}
}

// Tags and single commits can be pinned; their revisions name them.
func TestFetchTagAndCommit(t *testing.T) {
	ctx := context.Background()
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	old := repo.CommitFiles(t, "v1", map[string]string{"v": "1\n"})
	repo.Tag(t, "v1")
	repo.Git(t, "tag", "-a", "-m", "annotated", "v1-annotated")
	repo.Git(t, "push", "--quiet", "origin", "v1-annotated")
	repo.CommitFiles(t, "v2", map[string]string{"v": "2\n"})

	src := open(t, repo.FileURL(), nil)
	for _, tag := range []string{"v1", "v1-annotated"} {
		snap, err := src.Fetch(ctx, Ref{Tag: tag})
		if err != nil {
			t.Fatalf("tag %s: %v", tag, err)
		}
		if want := tag + "@sha1:" + old; snap.Revision != want {
			t.Fatalf("tag revision = %q, want %q", snap.Revision, want)
		}
		if got := readFile(t, snap, "v"); got != "1\n" {
			t.Fatalf("tag %s: v = %q", tag, got)
		}
	}

	snap, err := src.Fetch(ctx, Ref{Commit: old})
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha1:" + old; snap.Revision != want {
		t.Fatalf("commit revision = %q, want %q", snap.Revision, want)
	}
	snap, err = src.Fetch(ctx, Ref{Branch: "main", Commit: old})
	if err != nil {
		t.Fatal(err)
	}
	if want := "main@sha1:" + old; snap.Revision != want {
		t.Fatalf("branch+commit revision = %q, want %q", snap.Revision, want)
	}
}

// Over smart HTTPS with basic auth: the right credentials fetch; wrong ones
// and a stopped server fail with an error that shows no secret, and the last
// good checkout stays intact and current; the fetch recovers when the
// server returns.
func TestFetchHTTPAuthAndUnreachableKeepsLastGood(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	first := repo.CommitFiles(t, "one", map[string]string{"clusters/a.yaml": "name: a\n"})
	srv := gitserver.Start(t, root, gitserver.Options{Username: "warren", Password: "t0ken-value", TLS: true})
	ca := srv.CACertPEM()

	cache := t.TempDir()
	src, err := Open(Options{URL: srv.URL("fleet"), CacheDir: cache, Auth: &Auth{Username: "warren", Password: "t0ken-value", CABundle: ca}})
	if err != nil {
		t.Fatal(err)
	}
	good, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if good.Commit != first {
		t.Fatalf("commit %s, want %s", good.Commit, first)
	}

	wrong, err := Open(Options{URL: srv.URL("fleet"), CacheDir: cache, Auth: &Auth{Username: "warren", Password: "wrong-secret", CABundle: ca}})
	if err != nil {
		t.Fatal(err)
	}
	repo.CommitFiles(t, "two", map[string]string{"clusters/b.yaml": "name: b\n"})
	_, err = wrong.Fetch(ctx, Ref{Branch: "main"})
	if err == nil {
		t.Fatal("fetch with wrong credentials succeeded")
	}
	if strings.Contains(err.Error(), "wrong-secret") || strings.Contains(err.Error(), "t0ken-value") {
		t.Fatalf("error shows a secret: %v", err)
	}
	if _, err := os.Stat(filepath.Join(good.Dir, "clusters", "a.yaml")); err != nil {
		t.Fatalf("last good checkout damaged: %v", err)
	}

	srv.Stop()
	if _, err := src.Fetch(ctx, Ref{Branch: "main"}); err == nil {
		t.Fatal("fetch from a stopped server succeeded")
	}
	if cur := src.Current(); cur == nil || cur.Commit != first {
		t.Fatalf("current checkout after failure = %+v, want %s", cur, first)
	}
	if got := readFile(t, good, "clusters/a.yaml"); got != "name: a\n" {
		t.Fatalf("last good checkout changed: %q", got)
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	snap, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatalf("fetch after the server returned: %v", err)
	}
	if got := readFile(t, snap, "clusters/b.yaml"); got != "name: b\n" {
		t.Fatalf("clusters/b.yaml = %q", got)
	}
}

// Symbolic links are never written, so a link pointing out of the checkout
// cannot be followed; paths that climb out are refused; limits hold.
func TestCheckoutIsBoundedAndHasNoLinks(t *testing.T) {
	ctx := context.Background()
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	if err := os.Symlink("/etc/passwd", filepath.Join(repo.WorkDir, "escape.yaml")); err != nil {
		t.Fatal(err)
	}
	repo.Git(t, "add", "escape.yaml")
	repo.CommitFiles(t, "files", map[string]string{"ok.yaml": "a: 1\n", "big.yaml": strings.Repeat("x", 2048)})

	snap, err := open(t, repo.FileURL(), nil).Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(snap.Dir, "escape.yaml")); !os.IsNotExist(err) {
		t.Fatalf("symbolic link was written: %v", err)
	}
	if len(snap.SkippedLinks) != 1 || snap.SkippedLinks[0] != "escape.yaml" {
		t.Fatalf("skipped links = %v", snap.SkippedLinks)
	}
	if _, err := snap.Join("../outside"); err == nil {
		t.Fatal("Join accepted a path leaving the checkout")
	}

	small, err := Open(Options{URL: repo.FileURL(), CacheDir: t.TempDir(), Limits: Limits{MaxFiles: 10, MaxFileBytes: 1024, MaxTotalBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Fetch(ctx, Ref{Branch: "main"}); err == nil || !strings.Contains(err.Error(), "big.yaml") {
		t.Fatalf("want an error naming big.yaml over the size limit, got %v", err)
	}
}

// After the first fetch, a fetch downloads only what the new commit adds:
// a large file already fetched is not sent again.
func TestFetchIsIncremental(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	big := make([]byte, 0, 2<<20)
	for i := 0; len(big) < 2<<20; i++ {
		big = append(big, []byte(fmt.Sprintf("line %d of an incompressible-ish file %x\n", i, i*7919))...)
	}
	repo.CommitFiles(t, "big", map[string]string{"templates/big.yaml": string(big)})
	srv := gitserver.Start(t, root, gitserver.Options{})
	src := open(t, srv.URL("fleet"), nil)
	if _, err := src.Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	first := srv.BytesSent()

	repo.CommitFiles(t, "small", map[string]string{"clusters/a.yaml": "name: a\n"})
	before := srv.BytesSent()
	snap, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	second := srv.BytesSent() - before
	if second*10 > first {
		t.Fatalf("second fetch sent %d bytes, first %d: not incremental", second, first)
	}
	if got := readFile(t, snap, "templates/big.yaml"); len(got) != len(big) {
		t.Fatalf("big file in second checkout has %d bytes, want %d", len(got), len(big))
	}
	t.Logf("first fetch %d bytes, second %d bytes", first, second)
}

// TLS is always verified: an https remote with a certificate nobody vouched
// for is refused, and credentials are never sent over plain http.
func TestTLSVerifiedAndNoCredentialsInTheClear(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "init", map[string]string{"README": "x\n"})

	tlsSrv := gitserver.Start(t, root, gitserver.Options{TLS: true})
	if _, err := open(t, tlsSrv.URL("fleet"), nil).Fetch(ctx, Ref{Branch: "main"}); err == nil {
		t.Fatal("fetched from an https server whose certificate is not trusted")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error does not mention the certificate: %v", err)
	}
	if _, err := open(t, tlsSrv.URL("fleet"), &Auth{CABundle: tlsSrv.CACertPEM()}).Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatalf("fetch trusting the server's CA: %v", err)
	}

	plain := gitserver.Start(t, root, gitserver.Options{})
	_, err := Open(Options{URL: plain.URL("fleet"), CacheDir: t.TempDir(), Auth: &Auth{Username: "u", Password: "p"}})
	if err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("credentials over plain http: got %v, want a refusal", err)
	}
}

// The Fleet's URL changes to another repository: the cache starts afresh
// and the new repository's tip is checked out, shallow.
func TestURLChangeStartsTheCacheAfresh(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	one := gitserver.NewRepo(t, root, "one")
	one.CommitFiles(t, "one", map[string]string{"who": "one\n"})
	two := gitserver.NewRepo(t, root, "two")
	two.CommitFiles(t, "two-old", map[string]string{"who": "two-old\n"})
	head := two.CommitFiles(t, "two", map[string]string{"who": "two\n"})

	cache := t.TempDir()
	first, err := Open(Options{URL: one.FileURL(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	second, err := Open(Options{URL: two.FileURL(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := second.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Commit != head || readFile(t, snap, "who") != "two\n" {
		t.Fatalf("after the URL change: %s with who=%q", snap.Commit, readFile(t, snap, "who"))
	}
	if shallow, _ := second.repo.Storer.Shallow(); len(shallow) != 1 {
		t.Fatalf("cache for the new URL is not shallow: %v", shallow)
	}
}

// A branch force-pushed back below what the shallow cache holds (its
// parent was never fetched) is fetched as it is now, at the first attempt,
// and the move is reported as a rewind: the commit the branch held before
// is not in the new commit's history. A plain new commit is not a rewind.
func TestARewindBelowTheShallowCacheIsFetchedAndReported(t *testing.T) {
	ctx := context.Background()
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	first := repo.CommitFiles(t, "one cluster", map[string]string{"clusters/a.yaml": "name: a\n"})
	second := repo.CommitFiles(t, "second cluster", map[string]string{"clusters/b.yaml": "name: b\n"})

	src := open(t, repo.FileURL(), nil)
	snap, err := src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Commit != second {
		t.Fatalf("fetched %s, want %s", snap.Commit, second)
	}
	if _, err := src.repo.CommitObject(plumbing.NewHash(first)); err == nil {
		t.Fatal("the cache holds the first commit; the rewind below would not go below it")
	}

	// A force push, as the remote's owner makes it (the remote itself
	// refuses non-fast-forward pushes).
	if _, err := testkit.RunGit(ctx, repo.BareDir, "update-ref", "refs/heads/main", first); err != nil {
		t.Fatal(err)
	}
	repo.Git(t, "fetch", "--quiet", "origin")
	repo.Git(t, "reset", "--quiet", "--hard", "origin/main")
	snap, err = src.Fetch(ctx, Ref{Branch: "main"})
	if err != nil {
		t.Fatalf("fetching the rewound branch: %v", err)
	}
	if snap.Commit != first {
		t.Fatalf("fetched %s, want the rewound-to %s", snap.Commit, first)
	}
	if _, err := os.Stat(filepath.Join(snap.Dir, "clusters", "b.yaml")); !os.IsNotExist(err) {
		t.Fatalf("clusters/b.yaml is in the checkout of %s: %v", first, err)
	}
	if descends, err := src.Descends(first, second); err != nil || descends {
		t.Fatalf("Descends(%s, %s) = %v, %v; want false: the branch was rewound", first, second, descends, err)
	}

	third := repo.CommitFiles(t, "third", map[string]string{"clusters/c.yaml": "name: c\n"})
	if _, err := src.Fetch(ctx, Ref{Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	if descends, err := src.Descends(third, first); err != nil || !descends {
		t.Fatalf("Descends(%s, %s) = %v, %v; want true", third, first, descends, err)
	}
	if _, err := src.Descends(third, strings.Repeat("ab", 20)); err == nil {
		t.Fatal("Descends of a commit the cache never saw: want an error, not an answer")
	}
}
