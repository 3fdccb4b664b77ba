package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Signature names who made a commit.
type Signature struct {
	Name  string
	Email string
}

// Commit is one commit to make on the tip of a branch: files to write and
// files to delete, by slash-separated path from the repository root.
type Commit struct {
	// Branch to commit on; it must exist on the remote.
	Branch  string
	Author  Signature
	Message string
	// Write maps a path to its new content.
	Write map[string][]byte
	// Delete lists paths of files to remove; paths already absent are fine.
	// A folder left empty disappears, as Git has no empty folders.
	Delete []string
}

// PushResult says what Push did.
type PushResult struct {
	// Commit is the SHA-1 of the pushed commit; empty when Unchanged.
	Commit string
	// Revision is `<branch>@sha1:<hex>` of the branch after the push (or of
	// its tip when Unchanged).
	Revision string
	// Unchanged is true when the branch already held exactly these files,
	// so nothing was committed.
	Unchanged bool
	// Attempts counts the pushes tried; more than one means the branch moved
	// meanwhile and the change was made again on its new tip.
	Attempts int
}

// PushRejectedError is a push the remote refused for a reason a retry on a
// newer tip cannot fix: a protected branch, no write access, a hook. Reason
// is the remote's own message.
type PushRejectedError struct {
	Branch string
	Reason string
	Err    error
}

func (e *PushRejectedError) Error() string {
	return fmt.Sprintf("push to %s rejected: %s", e.Branch, e.Reason)
}

func (e *PushRejectedError) Unwrap() error { return e.Err }

// MaxPushAttempts bounds how often Push makes its change again on a branch
// that keeps moving.
const MaxPushAttempts = 5

const pushRef = plumbing.ReferenceName("refs/warren/push")

// Push makes c as one commit on the current tip of c.Branch and pushes it,
// never forcing. When someone else pushed meanwhile it fetches the new tip,
// makes the same change on it and tries again (up to MaxPushAttempts, with a
// short backoff). A commit that would change nothing is not made.
func (r *Repository) Push(ctx context.Context, c Commit) (*PushResult, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	backoff := 200 * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= MaxPushAttempts; attempt++ {
		res, err := r.pushOnce(ctx, c)
		if err == nil {
			res.Attempts = attempt
			return res, nil
		}
		if !isNonFastForward(err) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("source: push to %s: %w (after %v)", c.Branch, ctx.Err(), lastErr)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	return nil, fmt.Errorf("source: push to %s: the branch kept moving after %d attempts: %w", c.Branch, MaxPushAttempts, lastErr)
}

func (c Commit) validate() error {
	if c.Branch == "" {
		return errors.New("source: commit: empty branch")
	}
	if c.Author.Name == "" || c.Author.Email == "" {
		return errors.New("source: commit: author name and email are required")
	}
	if strings.TrimSpace(c.Message) == "" {
		return errors.New("source: commit: empty message")
	}
	for p := range c.Write {
		if err := checkRepoPath(p); err != nil {
			return err
		}
	}
	for _, p := range c.Delete {
		if err := checkRepoPath(p); err != nil {
			return err
		}
		if _, ok := c.Write[p]; ok {
			return fmt.Errorf("source: commit: %q is both written and deleted", p)
		}
	}
	return nil
}

func checkRepoPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("source: commit: path %q must be relative, clean and slash-separated", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "." || part == ".git" {
			return fmt.Errorf("source: commit: path %q has a forbidden component %q", p, part)
		}
	}
	return nil
}

func isNonFastForward(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "non-fast-forward") || strings.Contains(msg, "fetch first")
}

// pushOnce fetches the branch tip, makes the commit on it and pushes.
func (r *Repository) pushOnce(ctx context.Context, c Commit) (*PushResult, error) {
	_, tip, err := r.fetch(ctx, Ref{Branch: c.Branch})
	if err != nil {
		return nil, err
	}
	parent, err := r.repo.CommitObject(tip)
	if err != nil {
		return nil, fmt.Errorf("source: read %s tip: %w", c.Branch, err)
	}
	base, err := parent.Tree()
	if err != nil {
		return nil, fmt.Errorf("source: read %s tip tree: %w", c.Branch, err)
	}
	changes := map[string]*[]byte{}
	for p, content := range c.Write {
		content := content
		changes[p] = &content
	}
	for _, p := range c.Delete {
		changes[p] = nil
	}
	treeHash, err := editTree(r.repo.Storer, base, changes)
	if err != nil {
		return nil, fmt.Errorf("source: commit: %w", err)
	}
	if treeHash.IsZero() { // every file deleted: Git's empty tree
		if treeHash, err = storeObject(r.repo.Storer, &object.Tree{}); err != nil {
			return nil, fmt.Errorf("source: commit: %w", err)
		}
	}
	if treeHash == base.Hash {
		return &PushResult{Revision: c.Branch + "@sha1:" + tip.String(), Unchanged: true}, nil
	}
	now := time.Now()
	sig := object.Signature{Name: c.Author.Name, Email: c.Author.Email, When: now}
	commit := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      c.Message,
		TreeHash:     treeHash,
		ParentHashes: []plumbing.Hash{tip},
	}
	commitHash, err := storeObject(r.repo.Storer, commit)
	if err != nil {
		return nil, fmt.Errorf("source: commit: %w", err)
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(pushRef, commitHash)); err != nil {
		return nil, fmt.Errorf("source: commit: %w", err)
	}
	if r.beforePush != nil {
		r.beforePush()
	}
	spec := config.RefSpec(pushRef.String() + ":" + plumbing.NewBranchReferenceName(c.Branch).String())
	// The remote's own words (a hook's "main is protected") arrive on the
	// progress side band; keep a bounded copy for the rejection's reason.
	remoteSays := &remoteMessages{}
	err = r.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       r.auth,
		CABundle:   r.caBundle,
		Progress:   remoteSays,
	})
	switch {
	case err == nil:
	case isNonFastForward(err):
		return nil, err
	default:
		if rejected := pushRejection(err); rejected != "" {
			if said := remoteSays.String(); said != "" {
				rejected += " (remote: " + said + ")"
			}
			return nil, &PushRejectedError{Branch: c.Branch, Reason: rejected, Err: err}
		}
		return nil, r.remoteError("push "+c.Branch, err)
	}
	// Record the pushed commit as the branch tip, as a fetch would.
	_ = r.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewRemoteReferenceName(remoteName, c.Branch), commitHash))
	return &PushResult{Commit: commitHash.String(), Revision: c.Branch + "@sha1:" + commitHash.String()}, nil
}

// pushRejection returns the remote's reason when err is a refused ref update
// (report-status "ng") or a refused authorisation, else "".
func pushRejection(err error) string {
	msg := err.Error()
	for _, marker := range []string{"rejected", "declined", "denied", "protected", "authorization failed", "authentication required"} {
		if strings.Contains(strings.ToLower(msg), marker) {
			return msg
		}
	}
	return ""
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func storeObject(s storer.EncodedObjectStorer, o encoder) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	if err := o.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func storeBlob(s storer.EncodedObjectStorer, content []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(content); err != nil {
		_ = w.Close()
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// editTree returns the hash of base with changes made (a nil content deletes
// the path), writing only the trees along changed paths. base may be nil for
// a folder that does not exist yet; an edit that leaves a folder empty
// returns the zero hash for it.
func editTree(s storer.EncodedObjectStorer, base *object.Tree, changes map[string]*[]byte) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if base != nil {
		entries = slices.Clone(base.Entries)
	}
	here, below := splitChanges(changes)
	index := func(name string) int {
		return slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == name })
	}
	remove := func(name string) {
		if i := index(name); i >= 0 {
			entries = slices.Delete(entries, i, i+1)
		}
	}
	for name, content := range here {
		if i := index(name); i >= 0 && entries[i].Mode == filemode.Dir {
			return plumbing.ZeroHash, fmt.Errorf("%s is a folder, not a file", name)
		}
		if content == nil {
			remove(name)
			continue
		}
		h, err := storeBlob(s, *content)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		remove(name)
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	for name, sub := range below {
		var subTree *object.Tree
		if i := index(name); i >= 0 {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is a file, not a folder", name)
			}
			t, err := object.GetTree(s, entries[i].Hash)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("read folder %s: %w", name, err)
			}
			subTree = t
		}
		h, err := editTree(s, subTree, sub)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s/%w", name, err)
		}
		remove(name)
		if !h.IsZero() {
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
		}
	}
	if len(entries) == 0 && base != nil && len(base.Entries) > 0 {
		return plumbing.ZeroHash, nil
	}
	if len(entries) == 0 && base == nil {
		return plumbing.ZeroHash, nil
	}
	sortEntries(entries)
	return storeObject(s, &object.Tree{Entries: entries})
}

// splitChanges groups changes by their first path component: the files of
// this folder (here) and the changes below each of its folders.
func splitChanges(changes map[string]*[]byte) (here map[string]*[]byte, below map[string]map[string]*[]byte) {
	here, below = map[string]*[]byte{}, map[string]map[string]*[]byte{}
	for p, content := range changes {
		first, rest, nested := strings.Cut(p, "/")
		if !nested {
			here[first] = content
			continue
		}
		if below[first] == nil {
			below[first] = map[string]*[]byte{}
		}
		below[first][rest] = content
	}
	return here, below
}

// sortEntries orders a tree's entries as Git does: by name, comparing a
// folder's name as if it ended in "/".
func sortEntries(entries []object.TreeEntry) {
	sortKey := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int {
		return bytes.Compare([]byte(sortKey(a)), []byte(sortKey(b)))
	})
}

// maxRemoteMessage bounds what is kept of the remote's progress messages.
const maxRemoteMessage = 2048

// remoteMessages keeps the remote's side-band messages (hook output),
// bounded, on one line, without control characters and without Git's own
// progress counters.
type remoteMessages struct {
	buf bytes.Buffer
}

func (m *remoteMessages) Write(p []byte) (int, error) {
	if room := maxRemoteMessage - m.buf.Len(); room > 0 {
		m.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns the messages that are not progress counters, joined.
func (m *remoteMessages) String() string {
	var lines []string
	for _, line := range strings.FieldsFunc(m.buf.String(), func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, strings.TrimSpace(line))
		if line == "" || strings.Contains(line, "%") && (strings.HasPrefix(line, "Counting") || strings.HasPrefix(line, "Compressing") || strings.HasPrefix(line, "Resolving") || strings.HasPrefix(line, "Writing")) {
			continue
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "; ")
}
