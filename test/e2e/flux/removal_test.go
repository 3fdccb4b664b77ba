package fluxe2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/test/flux"
	"github.com/warren-dev/warren/test/testkit"
)

// removedCluster merges the removal of alpha (the last cluster, so the
// kubeconfigs/ folder goes with its file): warren prunes it and commits the
// file's removal, Flux prunes the SealedSecret and the garbage collector
// its Secret. Flux's other objects, including the namespace next to
// alpha's, stay as they were, and neither tool writes the other's objects.
func (s *story) removedCluster(t *testing.T) {
	sealed := object{"bitnami.com", "sealedsecrets", "team-a", "alpha-kubeconfig"}
	applied := s.fluxObjects(t)
	if _, ok := applied[sealed]; !ok {
		t.Fatalf("alpha's SealedSecret is not in Flux's inventory")
	}
	delete(applied, sealed)
	before, err := s.host.AuditWrites()
	if err != nil {
		t.Fatal(err)
	}

	// Removing every cluster is more than half: the platform team confirms
	// it on the Fleet, as warren's held-back prune asks.
	f := s.getFleet(t)
	confirmed := f.DeepCopy()
	confirmed.Spec.AllowMassPrune = true
	if err := s.admin.Patch(s.ctx, confirmed, client.MergeFrom(f)); err != nil {
		t.Fatal(err)
	}
	s.mergePullRequest(t, "remove-alpha", "remove cluster alpha", func() {
		s.fleet.RemoveFiles(t, "remove cluster alpha", "clusters/alpha.yaml")
	})
	s.requestReconcile(t, "removed-alpha")
	s.waitFor(t, 2*time.Minute, "alpha pruned and its kubeconfig removed from Git", func() bool {
		_, err := testkit.RunGit(s.ctx, s.fleet.BareDir, "cat-file", "-e", "main:kubeconfigs/alpha.yaml")
		return err != nil && s.cluster(t, "alpha") == nil
	})
	commit := s.fleet.Head(t, "main")
	if changed := testkit.Git(t, s.fleet.BareDir, "show", "--name-status", "--format=", commit); changed != "D\tkubeconfigs/alpha.yaml" {
		t.Fatalf("warren's removal commit changed %q, want only the deletion of kubeconfigs/alpha.yaml", changed)
	}
	flux.Reconcile(t, s.host.Config, flux.GitRepositories, "clusters", time.Minute)
	s.waitApplied(t, "warren-kubeconfigs", commit)
	s.waitFor(t, time.Minute, "the SealedSecret and its Secret gone from team-a", func() bool {
		_, err := s.kube.CoreV1().Secrets("team-a").Get(s.ctx, "alpha-kubeconfig", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && s.sealedSecret(t, "alpha-kubeconfig") == nil
	})

	after, err := s.host.AuditWrites()
	if err != nil {
		t.Fatal(err)
	}
	window := after[len(before):]
	t.Logf("writes by warren and Flux while alpha was removed, by user, field manager, verb and resource:\n%s", tally(window))
	s.checkWindow(t, window, applied, warrenObjects(before))
	for _, w := range window {
		if w.Verb == "delete" && w.User == flux.User(flux.KustomizeController) && written(w) != sealed {
			t.Errorf("Flux deleted %s, not only alpha's SealedSecret", written(w))
		}
	}
	s.checkUntouched(t, applied)
	for _, ns := range []string{"vc-alpha-tools", "team-a"} {
		if got, err := s.kube.CoreV1().Namespaces().Get(s.ctx, ns, metav1.GetOptions{}); err != nil || got.DeletionTimestamp != nil {
			t.Errorf("namespace %s, next to the removed cluster's, is gone or going: %v", ns, err)
		}
	}
	if ks := flux.WaitReady(t, s.host.Config, flux.Kustomizations, "warren-kubeconfigs", time.Minute); len(flux.Inventory(ks)) != 0 {
		t.Errorf("warren-kubeconfigs still inventories %v", flux.Inventory(ks))
	}
	if inv := flux.Inventory(flux.WaitReady(t, s.host.Config, flux.Kustomizations, "platform", time.Minute)); !slices.ContainsFunc(inv, func(id string) bool {
		return strings.HasPrefix(id, "vc-alpha-tools_dashboards_")
	}) {
		t.Errorf("the platform's Kustomization lost vc-alpha-tools/dashboards: %v", inv)
	}
}
