// Package gitfs reads a fleet repository's folders as they were at one Git
// revision, into an in-memory file system that package load can read. It
// uses go-git only (no git binary) and never writes to the repository.
package gitfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing/fstest"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/warren-dev/warren/reconciler/load"
)

// AtRevision returns the tree of dir (a directory inside a Git work tree) at
// revision rev (anything git rev-parse accepts that go-git resolves: a
// branch, tag, commit hash, HEAD~1). A file larger than load.MaxFileSize is
// kept only just past that size, so that load reports it without warren
// holding it in memory.
func AtRevision(dir, rev string) (fs.FS, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		abs = resolved
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("opening the Git repository holding %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("opening the work tree holding %s: %w", dir, err)
	}
	root := wt.Filesystem.Root()
	if resolved, err := filepath.EvalSymlinks(root); err == nil {
		root = resolved
	}
	rel, err := filepath.Rel(root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s is not inside the work tree %s", dir, root)
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolving revision %q: %w", rev, err)
	}
	commit, err := repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", hash, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("reading the tree of %s: %w", hash, err)
	}
	out := fstest.MapFS{}
	if rel != "." {
		tree, err = tree.Tree(filepath.ToSlash(rel))
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return out, nil // the folder did not exist yet at rev
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s at %s: %w", rel, rev, err)
		}
	}
	err = tree.Files().ForEach(func(f *object.File) error {
		name := f.Name
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return fmt.Errorf("reading link %s: %w", name, err)
			}
			out[name] = &fstest.MapFile{Mode: fs.ModeSymlink | 0o777, Data: []byte(target)}
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			r, err := f.Reader()
			if err != nil {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			data, err := io.ReadAll(io.LimitReader(r, load.MaxFileSize+1))
			r.Close()
			if err != nil {
				return fmt.Errorf("reading %s: %w", name, err)
			}
			out[name] = &fstest.MapFile{Mode: 0o644, Data: data}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s at %s: %w", dir, rev, err)
	}
	return out, nil
}
