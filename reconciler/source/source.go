// Package source fetches a Fleet's Git repository into a per-Fleet cache and
// hands back an immutable, bounded checkout of one revision; it also commits
// and pushes files back to that repository for the reconciler's own writes.
//
// It must never skip a TLS or SSH host-key check, never put credentials in an
// error or a log line, never force-push, and never replace the last good
// checkout with anything less than a complete one.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Ref selects what to check out; the most specific field wins: Commit, then
// Tag, then Branch. All empty means the remote's default branch.
type Ref struct {
	Branch string
	Tag    string
	Commit string
}

// Limits bound what a checkout may hold, so a hostile or mistaken repository
// cannot fill the disk or the reconciler's memory.
type Limits struct {
	// MaxFiles is the most regular files a checkout may hold.
	MaxFiles int
	// MaxFileBytes is the largest single file.
	MaxFileBytes int64
	// MaxTotalBytes is the most bytes all files together may hold.
	MaxTotalBytes int64
}

// DefaultLimits fit a fleet of thousands of definitions with room to spare.
var DefaultLimits = Limits{MaxFiles: 20000, MaxFileBytes: 4 << 20, MaxTotalBytes: 256 << 20}

// Snapshot is one revision checked out on disk. Its directory is never
// changed after Fetch returns it and holds regular files and folders only:
// symbolic links in the repository are not written (they are listed in
// SkippedLinks), so nothing read below Dir leads outside it.
type Snapshot struct {
	// Revision is `<branch>@sha1:<hex>`, `<tag>@sha1:<hex>` or, for a bare
	// commit, `sha1:<hex>`.
	Revision string
	// Commit is the checked-out commit's SHA-1 in hex.
	Commit string
	// Dir is the root of the checkout.
	Dir string
	// SkippedLinks are the repository paths of symbolic links not written.
	SkippedLinks []string
}

// Join returns the absolute path of rel inside the snapshot, refusing any
// path that would leave it (absolute, or climbing with "..").
func (s *Snapshot) Join(rel string) (string, error) {
	rel = filepath.FromSlash(strings.TrimPrefix(rel, "./"))
	if rel == "" || rel == "." {
		return s.Dir, nil
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("path %q leaves the repository root", rel)
	}
	return filepath.Join(s.Dir, rel), nil
}

// Options configure a Repository.
type Options struct {
	// URL of the remote: https://, http://, ssh://, user@host:path, file://
	// or a local path.
	URL string
	// Auth for the remote; nil for none.
	Auth *Auth
	// CacheDir is this Fleet's own cache folder; it is created if missing.
	CacheDir string
	// Limits on a checkout; zero value means DefaultLimits.
	Limits Limits
}

// Repository is one remote repository with its per-Fleet cache. Its methods
// are safe to call from several goroutines; they run one at a time.
type Repository struct {
	mu         sync.Mutex
	url        string
	auth       transport.AuthMethod
	caBundle   []byte
	cacheDir   string
	limits     Limits
	repo       *git.Repository
	current    *Snapshot
	beforePush func() // test seam: runs between building a commit and pushing it
}

const remoteName = "origin"

var sha1Hex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Open prepares the cache of one remote. It does not contact the remote.
func Open(o Options) (*Repository, error) {
	if o.URL == "" {
		return nil, errors.New("source: empty repository URL")
	}
	if o.CacheDir == "" {
		return nil, errors.New("source: empty cache folder")
	}
	remoteURL, err := normaliseURL(o.URL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("source: create cache folder: %w", err)
	}
	// A checkout interrupted by a crash is never complete; drop it.
	if stale, err := filepath.Glob(filepath.Join(o.CacheDir, "checkouts", ".tmp-*")); err == nil {
		for _, dir := range stale {
			_ = os.RemoveAll(dir)
		}
	}
	r := &Repository{url: remoteURL, cacheDir: o.CacheDir, limits: o.Limits}
	if r.limits == (Limits{}) {
		r.limits = DefaultLimits
	}
	r.auth, err = o.Auth.method(remoteURL, filepath.Join(o.CacheDir, "known_hosts"))
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", redact(remoteURL), err)
	}
	r.caBundle = o.Auth.caBundle()
	r.repo, err = openOrInitBare(filepath.Join(o.CacheDir, "git"), remoteURL)
	if err != nil {
		return nil, fmt.Errorf("source: %s: %w", redact(remoteURL), err)
	}
	return r, nil
}

// normaliseURL turns a local path into a file:// URL and rejects what go-git
// would misread.
func normaliseURL(raw string) (string, error) {
	switch {
	case strings.HasPrefix(raw, "/"):
		return "file://" + filepath.Clean(raw), nil
	case strings.HasPrefix(raw, "file://"), strings.HasPrefix(raw, "https://"),
		strings.HasPrefix(raw, "http://"), strings.HasPrefix(raw, "ssh://"):
		if _, err := url.Parse(raw); err != nil {
			return "", fmt.Errorf("source: repository URL: %w", err)
		}
		return raw, nil
	case regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:`).MatchString(raw):
		return raw, nil // scp-like ssh: git@host:org/repo.git
	}
	return "", fmt.Errorf("source: repository URL %q: want https://, ssh://, file:// or an absolute path", redact(raw))
}

// redact drops any user information from a URL before it reaches an error.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// openOrInitBare opens the cache repository, starting it afresh when it
// was made for another URL: its history would only mislead the fetch
// negotiation with the new remote.
func openOrInitBare(dir, remoteURL string) (*git.Repository, error) {
	repo, err := git.PlainOpen(dir)
	if err == nil {
		cfg, cerr := repo.Config()
		if cerr != nil {
			return nil, fmt.Errorf("read cache repository config: %w", cerr)
		}
		if have, ok := cfg.Remotes[remoteName]; ok && slices.Equal(have.URLs, []string{remoteURL}) {
			return repo, nil
		}
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("reset cache repository: %w", err)
		}
		err = git.ErrRepositoryNotExists
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("open cache repository: %w", err)
	}
	repo, err = git.PlainInit(dir, true)
	if err != nil {
		return nil, fmt.Errorf("create cache repository: %w", err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return nil, fmt.Errorf("read cache repository config: %w", err)
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{Name: remoteName, URLs: []string{remoteURL}}
	if err := repo.SetConfig(cfg); err != nil {
		return nil, fmt.Errorf("write cache repository config: %w", err)
	}
	return repo, nil
}

// Fetch brings ref up to date from the remote (shallow, only that ref, and
// only what is new since the last fetch) and returns its checkout. If the
// remote cannot be reached or refuses the credentials, it returns an error
// and the previous checkout stays as it was.
func (r *Repository) Fetch(ctx context.Context, ref Ref) (*Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()

	name, commit, err := r.fetch(ctx, ref)
	if err != nil {
		return nil, err
	}
	snap, err := r.checkout(commit)
	if err != nil {
		return nil, err
	}
	if name == "" {
		snap.Revision = "sha1:" + commit.String()
	} else {
		snap.Revision = name + "@sha1:" + commit.String()
	}
	r.current = snap
	r.removeOldCheckouts(snap.Commit)
	return snap, nil
}

// Current returns the last checkout Fetch returned, or nil.
func (r *Repository) Current() *Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

// fetch updates the cache for ref and returns the revision's name part and
// the commit to check out.
func (r *Repository) fetch(ctx context.Context, ref Ref) (string, plumbing.Hash, error) {
	var (
		spec    config.RefSpec
		local   plumbing.ReferenceName
		display string
	)
	switch {
	case ref.Commit != "":
		if !sha1Hex.MatchString(ref.Commit) {
			return "", plumbing.ZeroHash, fmt.Errorf("source: ref.commit %q is not a 40-character SHA-1", ref.Commit)
		}
		local = plumbing.ReferenceName("refs/warren/commit")
		spec = config.RefSpec("+" + ref.Commit + ":" + local.String())
		display = ref.Branch
	case ref.Tag != "":
		local = plumbing.NewTagReferenceName(ref.Tag)
		spec = config.RefSpec("+" + local.String() + ":" + local.String())
		display = ref.Tag
	default:
		branch := ref.Branch
		if branch == "" {
			var err error
			if branch, err = r.defaultBranch(ctx); err != nil {
				return "", plumbing.ZeroHash, err
			}
		}
		local = plumbing.NewRemoteReferenceName(remoteName, branch)
		spec = config.RefSpec("+" + plumbing.NewBranchReferenceName(branch).String() + ":" + local.String())
		display = branch
	}
	if err := spec.Validate(); err != nil {
		return "", plumbing.ZeroHash, fmt.Errorf("source: ref: %w", err)
	}
	// The first fetch of a ref is shallow (depth 1). Later ones ask for
	// everything new since the commit we hold, without a depth: with a
	// depth, upload-pack sends the whole tree again even though we have
	// most of it.
	depth := 1
	if _, err := r.repo.Reference(local, false); err == nil {
		depth = 0
	}
	what := "fetch " + display + refSuffix(ref)
	if err := r.fetchRef(ctx, spec, depth, what); err != nil {
		return "", plumbing.ZeroHash, err
	}
	commit, err := r.resolve(local)
	if errors.Is(err, plumbing.ErrObjectNotFound) && depth == 0 {
		// The ref moved to a commit the shallow cache never held (a force
		// push back below the commits it fetched): the incremental fetch
		// told the remote we hold its history, so nothing came. Fetch the
		// ref afresh, shallow, for what it names now.
		if err := r.repo.Storer.RemoveReference(local); err != nil {
			return "", plumbing.ZeroHash, fmt.Errorf("source: %w", err)
		}
		if err := r.fetchRef(ctx, spec, 1, what); err != nil {
			return "", plumbing.ZeroHash, err
		}
		commit, err = r.resolve(local)
	}
	if err != nil {
		return "", plumbing.ZeroHash, err
	}
	return display, commit, nil
}

// fetchRef fetches one refspec at depth (0: everything new).
func (r *Repository) fetchRef(ctx context.Context, spec config.RefSpec, depth int, what string) error {
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{spec},
		Depth:      depth,
		Auth:       r.auth,
		CABundle:   r.caBundle,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return r.remoteError(what, err)
	}
	return nil
}

// resolve returns the commit a fetched local ref names.
func (r *Repository) resolve(local plumbing.ReferenceName) (plumbing.Hash, error) {
	resolved, err := r.repo.Reference(local, true)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("source: %s: %s not found after fetch: %w", redact(r.url), local, err)
	}
	return r.peelToCommit(resolved.Hash())
}

// maxHistoryWalk bounds how many commits Descends reads.
const maxHistoryWalk = 100000

// Descends reports whether ancestor is in commit's history (or is commit),
// as far as the cache holds that history. It is how a rewind is told from
// a new commit: a branch whose new tip does not descend from the commit last
// applied was moved back or rewritten. Both commits must be in the cache
// (ancestor because an earlier Fetch brought it); an error says the cache
// cannot tell.
func (r *Repository) Descends(commit, ancestor string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := plumbing.NewHash(ancestor)
	if _, err := r.repo.CommitObject(want); err != nil {
		return false, fmt.Errorf("source: commit %s is not in the cache: %w", ancestor, err)
	}
	start, err := r.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return false, fmt.Errorf("source: commit %s is not in the cache: %w", commit, err)
	}
	seen := map[plumbing.Hash]bool{start.Hash: true}
	queue := []*object.Commit{start}
	for len(queue) > 0 && len(seen) <= maxHistoryWalk {
		c := queue[0]
		queue = queue[1:]
		if c.Hash == want {
			return true, nil
		}
		for _, h := range c.ParentHashes {
			if seen[h] {
				continue
			}
			seen[h] = true
			// A parent missing from the cache is the shallow boundary:
			// the history beyond it was never fetched.
			if p, err := r.repo.CommitObject(h); err == nil {
				queue = append(queue, p)
			}
		}
	}
	return false, nil
}

func refSuffix(ref Ref) string {
	if ref.Commit != "" {
		return " commit " + ref.Commit
	}
	return ""
}

// peelToCommit follows annotated tags to the commit they name.
func (r *Repository) peelToCommit(h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		if tag, err := r.repo.TagObject(h); err == nil {
			h = tag.Target
			continue
		}
		if _, err := r.repo.CommitObject(h); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("source: %s: %s is not a commit: %w", redact(r.url), h, err)
		}
		return h, nil
	}
	return plumbing.ZeroHash, fmt.Errorf("source: %s: tag chain at %s too long", redact(r.url), h)
}

// defaultBranch asks the remote which branch its HEAD points at.
func (r *Repository) defaultBranch(ctx context.Context) (string, error) {
	remote, err := r.repo.Remote(remoteName)
	if err != nil {
		return "", fmt.Errorf("source: %w", err)
	}
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: r.auth, CABundle: r.caBundle})
	if err != nil {
		return "", r.remoteError("list refs", err)
	}
	var head *plumbing.Reference
	branches := map[plumbing.Hash][]string{}
	for _, rf := range refs {
		switch {
		case rf.Name() == plumbing.HEAD:
			head = rf
		case rf.Name().IsBranch() && rf.Type() == plumbing.HashReference:
			branches[rf.Hash()] = append(branches[rf.Hash()], rf.Name().Short())
		}
	}
	if head == nil {
		return "", fmt.Errorf("source: %s has no HEAD; set ref.branch", redact(r.url))
	}
	if head.Type() == plumbing.SymbolicReference && head.Target().IsBranch() {
		return head.Target().Short(), nil
	}
	candidates := branches[head.Hash()]
	for _, preferred := range []string{"main", "master"} {
		if slices.Contains(candidates, preferred) {
			return preferred, nil
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	return "", fmt.Errorf("source: %s: cannot tell the default branch; set ref.branch", redact(r.url))
}

// remoteError words a transport failure without credentials.
func (r *Repository) remoteError(what string, err error) error {
	for _, known := range []struct {
		sentinel error
		says     string
	}{
		{transport.ErrAuthenticationRequired, "authentication required (check the Fleet's secretRef)"},
		{transport.ErrAuthorizationFailed, "credentials refused"},
		{transport.ErrRepositoryNotFound, "repository not found"},
	} {
		if errors.Is(err, known.sentinel) {
			return &remoteErr{msg: fmt.Sprintf("source: %s: %s: %s%s", redact(r.url), what, known.says, detail(err, known.sentinel)), err: err}
		}
	}
	switch {
	case errors.Is(err, git.ErrExactSHA1NotSupported):
		return fmt.Errorf("source: %s: %s: the server does not serve single commits; use a branch or tag: %w", redact(r.url), what, err)
	}
	return fmt.Errorf("source: %s: %s: %w", redact(r.url), what, err)
}

// remoteErr words a known transport failure once, keeping the original
// error for errors.Is.
type remoteErr struct {
	msg string
	err error
}

func (e *remoteErr) Error() string { return e.msg }
func (e *remoteErr) Unwrap() error { return e.err }

// detail is what err says beyond its sentinel's own words ("" when nothing).
func detail(err, sentinel error) string {
	rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(err.Error(), sentinel.Error()), ":"))
	if rest == "" || rest == err.Error() && strings.Contains(rest, sentinel.Error()) {
		return ""
	}
	return ": " + rest
}

func (r *Repository) checkoutsDir() string { return filepath.Join(r.cacheDir, "checkouts") }

// checkout writes the tree of commit into checkouts/<sha> once; a complete
// checkout is renamed into place, so a reader never sees a partial one.
func (r *Repository) checkout(commit plumbing.Hash) (*Snapshot, error) {
	final := filepath.Join(r.checkoutsDir(), commit.String())
	skipped := filepath.Join(r.checkoutsDir(), commit.String()+".links")
	if _, err := os.Stat(final); err == nil {
		now := time.Now()
		_ = os.Chtimes(final, now, now) // marks it the newest for removeOldCheckouts
		snap := &Snapshot{Commit: commit.String(), Dir: final}
		if b, err := os.ReadFile(skipped); err == nil && len(b) > 0 {
			snap.SkippedLinks = strings.Split(strings.TrimSpace(string(b)), "\n")
		}
		return snap, nil
	}
	c, err := r.repo.CommitObject(commit)
	if err != nil {
		return nil, fmt.Errorf("source: read commit %s: %w", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("source: read tree of %s: %w", commit, err)
	}
	if err := os.MkdirAll(r.checkoutsDir(), 0o700); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	tmp, err := os.MkdirTemp(r.checkoutsDir(), ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	links, err := writeTree(r.repo.Storer, tree, tmp, r.limits)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("source: check out %s: %w", commit, err)
	}
	if err := os.WriteFile(skipped, []byte(strings.Join(links, "\n")), 0o600); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("source: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("source: %w", err)
	}
	return &Snapshot{Commit: commit.String(), Dir: final, SkippedLinks: links}, nil
}

// writeTree writes the regular files of tree below dir within limits and
// returns the paths of the symbolic links it left out.
func writeTree(s storer.EncodedObjectStorer, tree *object.Tree, dir string, limits Limits) ([]string, error) {
	var (
		links []string
		files int
		total int64
	)
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		rel := filepath.FromSlash(name)
		if !filepath.IsLocal(rel) || slices.Contains(strings.Split(name, "/"), ".git") {
			return nil, fmt.Errorf("unsafe path %q in repository", name)
		}
		target := filepath.Join(dir, rel)
		switch entry.Mode {
		case filemode.Dir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, err
			}
			continue
		case filemode.Symlink:
			links = append(links, name)
			continue
		case filemode.Submodule:
			continue
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
		default:
			return nil, fmt.Errorf("%s: unsupported file mode %s", name, entry.Mode)
		}
		files++
		if files > limits.MaxFiles {
			return nil, fmt.Errorf("more than %d files", limits.MaxFiles)
		}
		blob, err := object.GetBlob(s, entry.Hash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if blob.Size > limits.MaxFileBytes {
			return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", name, blob.Size, limits.MaxFileBytes)
		}
		total += blob.Size
		if total > limits.MaxTotalBytes {
			return nil, fmt.Errorf("more than %d bytes in all", limits.MaxTotalBytes)
		}
		if err := writeBlob(blob, target, entry.Mode == filemode.Executable, limits.MaxFileBytes); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return links, nil
}

func writeBlob(blob *object.Blob, target string, executable bool, limit int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if executable {
		mode = 0o755
	}
	rd, err := blob.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(rd, limit)); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// removeOldCheckouts keeps the current checkout and the one before it (a
// reader may still be using it) and deletes the rest.
func (r *Repository) removeOldCheckouts(keep string) {
	entries, err := os.ReadDir(r.checkoutsDir())
	if err != nil {
		return
	}
	type dirInfo struct {
		name string
		mod  int64
	}
	var dirs []dirInfo
	for _, e := range entries {
		if !e.IsDir() || e.Name() == keep || strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil {
			dirs = append(dirs, dirInfo{e.Name(), info.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(dirs, func(a, b dirInfo) int { return int(b.mod - a.mod) })
	for i, d := range dirs {
		if i == 0 {
			continue // the previous checkout
		}
		_ = os.RemoveAll(filepath.Join(r.checkoutsDir(), d.name))
		_ = os.Remove(filepath.Join(r.checkoutsDir(), d.name+".links"))
	}
}
