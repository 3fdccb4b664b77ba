package kubeconfige2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/testkit"
)

// Publishing under faults: the sealed-secrets controller down while
// clusters are added, and the remote refusing warren's push twenty times in
// a row, by branch protection and by a branch that keeps moving. Each time
// warren says why on the Fleet, retries within bounds on its own, and once
// the fault is gone publishes every kubeconfig exactly once, losing nothing.
func TestKubeconfigPublishingUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane, the sealed-secrets controller and a Git server")
	}
	t.Parallel() // each story runs on planes of its own
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	// Retries no more than a second apart: twenty refusals in a row take
	// twenty passes.
	s := setUp(t, ctx, func(c *controller.Config) { c.RateLimiter.MaxRetryDelay = time.Second })
	s.waitFor("alpha Ready and its kubeconfig published", func() bool {
		vc := s.cluster("alpha")
		return vc != nil && conditions.IsReady(vc) && conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition)
	})
	for _, story := range []struct {
		name string
		run  func(*story)
	}{
		{"sealed-secrets controller down while clusters are added", (*story).sealingDownWhileClustersAreAdded},
		{"push rejected 20 times by branch protection", (*story).pushRejectedTwentyTimes},
		{"push raced 20 times by other pushes", (*story).pushRacedTwentyTimes},
	} {
		t.Run(story.name, func(t *testing.T) {
			sub := *s
			sub.t = t
			story.run(&sub)
		})
	}
}

// addClusters commits cluster files from the test's clone (over file://,
// which no hook refuses) and asks for a reconcile.
func (s *story) addClusters(names ...string) {
	s.t.Helper()
	s.repo.Pull(s.t)
	// Room for every cluster the stories add.
	files := map[string]string{"policies/team-a.yaml": fleettest.KubeconfigPolicyFor(10, []string{"view"})}
	for _, n := range names {
		files["clusters/"+n+".yaml"] = fleettest.KubeconfigCluster(n)
	}
	s.repo.CommitFiles(s.t, "add "+strings.Join(names, ", "), files)
	s.requestReconcile("add-" + strings.Join(names, "-"))
}

// waitPublished waits until each named cluster's kubeconfig is published
// and the Fleet reports nothing pending.
func (s *story) waitPublished(names ...string) {
	s.t.Helper()
	s.waitFor(strings.Join(names, ", ")+" published and nothing pending", func() bool {
		for _, n := range names {
			vc := s.cluster(n)
			if vc == nil || !conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition) {
				return false
			}
		}
		f := s.getFleet()
		return conditions.IsTrue(f, v1alpha1.KubeconfigsPublishedCondition) && f.Status.Kubeconfigs != nil &&
			len(f.Status.Kubeconfigs.PendingPushes) == 0 && f.Status.Kubeconfigs.LastPushError == ""
	})
}

// assertFilesAt checks each named cluster's file is at commit.
func (s *story) assertFilesAt(commit string, names ...string) {
	s.t.Helper()
	for _, n := range names {
		if _, err := testkit.RunGit(s.ctx, s.repo.BareDir, "cat-file", "-e", commit+":kubeconfigs/"+n+".yaml"); err != nil {
			s.t.Errorf("kubeconfigs/%s.yaml is not at %s", n, commit)
		}
	}
}

// assertQuiet asks for two more reconciles and checks they commit nothing.
func (s *story) assertQuiet(label string) {
	s.t.Helper()
	head := s.repo.Head(s.t, "main")
	for i := range 2 {
		s.requestReconcile(fmt.Sprintf("%s-quiet-%d", label, i))
	}
	if got := s.repo.Head(s.t, "main"); got != head {
		s.t.Errorf("reconciles with nothing changed moved main from %s to %s", head, got)
	}
}

func (s *story) sealingDownWhileClustersAreAdded() {
	commits := s.countWarrenCommits()
	alpha := s.repo.Show(s.t, s.repo.Head(s.t, "main"), "kubeconfigs/alpha.yaml")
	s.sealed.Kill()
	s.addClusters("beta", "gamma")
	s.waitFor("beta and gamma Ready, their kubeconfigs waiting for the sealing certificate", func() bool {
		f := s.getFleet()
		for _, n := range []string{"beta", "gamma"} {
			vc := s.cluster(n)
			if vc == nil || !conditions.IsReady(vc) || conditions.GetReason(vc, v1alpha1.KubeconfigPublishedCondition) != v1alpha1.SealingUnavailableReason {
				return false
			}
		}
		return conditions.GetReason(f, v1alpha1.KubeconfigsPublishedCondition) == v1alpha1.SealingUnavailableReason
	})
	s.t.Logf("Fleet says: %s", conditions.GetMessage(s.getFleet(), v1alpha1.KubeconfigsPublishedCondition))
	if n := s.countWarrenCommits(); n != commits {
		s.t.Fatalf("warren made %d commit(s) without a sealing certificate", n-commits)
	}

	if err := s.sealed.Revive(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	// No request: the publisher retries on its own.
	s.waitPublished("alpha", "beta", "gamma")
	if n := s.countWarrenCommits(); n != commits+1 {
		s.t.Errorf("%d warren commit(s) once sealing returned, want exactly one for beta and gamma", n-commits)
	}
	s.assertFilesAt(s.repo.Head(s.t, "main"), "alpha", "beta", "gamma")
	if now := s.repo.Show(s.t, s.repo.Head(s.t, "main"), "kubeconfigs/alpha.yaml"); now != alpha {
		s.t.Error("alpha's kubeconfig changed although neither it nor the sealing key did")
	}
	s.assertQuiet("sealing")
	s.fsck()
}

// rejectFirst installs a pre-receive hook refusing warren's next n pushes
// (over HTTP; the test's own go over file://) with a branch-protection
// message, and returns how to read how many pushes it has seen.
func (s *story) rejectFirst(n int) func() int {
	s.t.Helper()
	counter := filepath.Join(s.t.TempDir(), "pushes")
	hook := filepath.Join(s.repo.BareDir, "hooks", "pre-receive")
	script := fmt.Sprintf(`#!/bin/sh
cat >/dev/null
[ -n "$GIT_HTTP_EXPORT_ALL" ] || exit 0
n=$(cat %[1]q 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > %[1]q
if [ "$n" -le %[2]d ]; then echo "main is protected: warren may not push (refusal $n of %[2]d)" >&2; exit 1; fi
`, counter, n)
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = os.Remove(hook) })
	return func() int {
		b, _ := os.ReadFile(counter)
		v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return v
	}
}

func (s *story) pushRejectedTwentyTimes() {
	commits := s.countWarrenCommits()
	pushes := s.rejectFirst(20)
	s.addClusters("delta")
	s.waitFor("the refused push reported on the Fleet", func() bool {
		f := s.getFleet()
		st := f.Status.Kubeconfigs
		return conditions.GetReason(f, v1alpha1.KubeconfigsPublishedCondition) == v1alpha1.PushFailedReason &&
			st != nil && strings.Contains(st.LastPushError, "main is protected") && len(st.PendingPushes) == 1 &&
			st.PendingPushes[0] == "kubeconfigs/delta.yaml"
	})
	s.t.Logf("Fleet says: %s", conditions.GetMessage(s.getFleet(), v1alpha1.KubeconfigsPublishedCondition))
	// No request: warren retries, with backoff, until the remote takes it.
	s.waitPublished("delta")
	if got := pushes(); got != 21 {
		s.t.Errorf("the remote saw %d pushes, want 20 refused and 1 accepted", got)
	}
	if n := s.countWarrenCommits(); n != commits+1 {
		s.t.Errorf("%d warren commit(s) for delta, want exactly one", n-commits)
	}
	s.assertFilesAt(s.repo.Head(s.t, "main"), "alpha", "beta", "gamma", "delta")
	s.assertQuiet("rejected")
	if got := pushes(); got != 21 {
		s.t.Errorf("warren pushed again after its change landed (%d pushes)", got)
	}
	s.fsck()
}

func (s *story) pushRacedTwentyTimes() {
	commits := s.countWarrenCommits()
	var raced atomic.Int64
	var race func()
	race = func() {
		n := raced.Add(1)
		if err := s.pushNote(fmt.Sprintf("docs/race-%02d.md", n)); err != nil {
			s.t.Errorf("pushing racing commit %d: %v", n, err)
		}
		if n < 20 {
			s.proxy.beforeReceivePack(race)
		}
	}
	s.proxy.beforeReceivePack(race)
	s.addClusters("epsilon")
	// No request: Push retries on a moved branch a few times, the
	// reconcile then again with backoff, until a push wins.
	s.waitPublished("epsilon")
	if got := raced.Load(); got != 20 {
		s.t.Fatalf("%d racing pushes, want 20", got)
	}
	head := s.repo.Head(s.t, "main")
	if n := s.countWarrenCommits(); n != commits+1 {
		s.t.Errorf("%d warren commit(s) for epsilon, want exactly one", n-commits)
	}
	s.assertFilesAt(head, "alpha", "beta", "gamma", "delta", "epsilon")
	for i := 1; i <= 20; i++ {
		if _, err := testkit.RunGit(s.ctx, s.repo.BareDir, "cat-file", "-e", fmt.Sprintf("%s:docs/race-%02d.md", head, i)); err != nil {
			s.t.Errorf("racing commit %d's file is lost at %s", i, head)
		}
	}
	s.assertQuiet("raced")
	s.fsck()
}

// pushNote commits one new file from the test's clone and pushes it, as
// another person pushing at the moment warren does.
func (s *story) pushNote(path string) error {
	dir := s.repo.WorkDir
	if _, err := testkit.RunGit(s.ctx, dir, "pull", "--quiet", "--ff-only", "origin", "main"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, path), []byte(path+"\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"add", path}, {"commit", "--quiet", "-m", "note " + path}, {"push", "--quiet", "origin", "main"}} {
		if _, err := testkit.RunGit(s.ctx, dir, args...); err != nil {
			return err
		}
	}
	return nil
}
