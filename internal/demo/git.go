package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/warren-dev/warren/examples"
)

const (
	branch     = "main"
	remoteName = "origin"
)

var author = &object.Signature{Name: "warren demo", Email: "demo@warren.invalid"}

// fleetRepos is the demo's Git side, shaped like a platform team's: a bare
// repository standing in for the Git server (the Fleet's URL, which warren
// fetches from and pushes kubeconfigs to) and a working clone the demo
// commits in and pushes from, as a person would. A non-bare repository
// cannot be the remote: Git refuses a push to its checked-out branch.
type fleetRepos struct {
	// RemoteDir is the bare repository.
	RemoteDir string
	// CloneDir is the working clone; its origin is RemoteDir and its main
	// tracks origin/main, so `git push` and `git pull` need no arguments.
	CloneDir string

	clone *git.Repository
}

// makeRepositories writes the embedded example fleet to a new working clone
// at cloneDir, commits it on main and pushes it to a new bare repository at
// remoteDir.
func makeRepositories(ctx context.Context, remoteDir, cloneDir string) (*fleetRepos, error) {
	mainRef := plumbing.NewBranchReferenceName(branch)
	if _, err := git.PlainInitWithOptions(remoteDir, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: mainRef},
	}); err != nil {
		return nil, fmt.Errorf("creating the bare repository: %w", err)
	}
	sub, err := fs.Sub(examples.Fleet, "fleet")
	if err != nil {
		return nil, err
	}
	if err := os.CopyFS(cloneDir, sub); err != nil {
		return nil, fmt.Errorf("writing the example fleet: %w", err)
	}
	clone, err := git.PlainInitWithOptions(cloneDir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: mainRef}})
	if err != nil {
		return nil, fmt.Errorf("creating the working clone: %w", err)
	}
	if _, err := clone.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{remoteDir}}); err != nil {
		return nil, fmt.Errorf("adding the remote: %w", err)
	}
	if err := clone.CreateBranch(&config.Branch{Name: branch, Remote: remoteName, Merge: mainRef}); err != nil {
		return nil, fmt.Errorf("tracking %s/%s: %w", remoteName, branch, err)
	}
	r := &fleetRepos{RemoteDir: remoteDir, CloneDir: cloneDir, clone: clone}
	wt, err := clone.Worktree()
	if err != nil {
		return nil, err
	}
	if err := wt.AddGlob("."); err != nil {
		return nil, err
	}
	if err := commit(wt, "Example fleet: two teams, three clusters"); err != nil {
		return nil, err
	}
	return r, r.push(ctx)
}

// Head is the working clone's current commit.
func (r *fleetRepos) Head() (plumbing.Hash, error) {
	ref, err := r.clone.Head()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// Pull fast-forwards the working clone to the remote's main, as `git pull`
// would.
func (r *fleetRepos) Pull(ctx context.Context) error {
	wt, err := r.clone.Worktree()
	if err != nil {
		return err
	}
	err = wt.PullContext(ctx, &git.PullOptions{
		RemoteName:    remoteName,
		ReferenceName: plumbing.NewBranchReferenceName(branch),
		SingleBranch:  true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("pulling %s into %s: %w", branch, r.CloneDir, err)
	}
	return nil
}

// RemoveAndPush pulls, deletes path, commits and pushes.
func (r *fleetRepos) RemoveAndPush(ctx context.Context, path, message string) error {
	if path == "" || strings.Contains(path, "..") {
		return errors.New("the cluster does not say which file defines it")
	}
	// warren may have pushed since the last pull; without it the push
	// would not be a fast-forward.
	if err := r.Pull(ctx); err != nil {
		return err
	}
	wt, err := r.clone.Worktree()
	if err != nil {
		return err
	}
	if _, err := wt.Remove(filepath.ToSlash(path)); err != nil {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	if err := commit(wt, message); err != nil {
		return err
	}
	return r.push(ctx)
}

func (r *fleetRepos) push(ctx context.Context) error {
	ref := config.RefSpec(plumbing.NewBranchReferenceName(branch) + ":" + plumbing.NewBranchReferenceName(branch))
	if err := r.clone.PushContext(ctx, &git.PushOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{ref}}); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", branch, r.RemoteDir, err)
	}
	return nil
}

// CommitsSince lists the working clone's commits after since, oldest first.
func (r *fleetRepos) CommitsSince(since plumbing.Hash) ([]*object.Commit, error) {
	head, err := r.Head()
	if err != nil {
		return nil, err
	}
	iter, err := r.clone.Log(&git.LogOptions{From: head})
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var out []*object.Commit
	for {
		c, err := iter.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("commit %s is not in the history of %s", since, head)
		}
		if err != nil {
			return nil, err
		}
		if c.Hash == since {
			break
		}
		out = append([]*object.Commit{c}, out...)
	}
	return out, nil
}

// RemoteHasFile says whether the remote's main holds path.
func (r *fleetRepos) RemoteHasFile(path string) (bool, error) {
	// Opened afresh each time: a repository opened earlier may not see
	// the packs a later push added.
	remote, err := git.PlainOpen(r.RemoteDir)
	if err != nil {
		return false, err
	}
	ref, err := remote.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return false, err
	}
	c, err := remote.CommitObject(ref.Hash())
	if err != nil {
		return false, err
	}
	_, err = c.File(path)
	if errors.Is(err, object.ErrFileNotFound) {
		return false, nil
	}
	return err == nil, err
}

func commit(wt *git.Worktree, message string) error {
	sig := *author
	sig.When = time.Now()
	_, err := wt.Commit(message, &git.CommitOptions{Author: &sig})
	return err
}
