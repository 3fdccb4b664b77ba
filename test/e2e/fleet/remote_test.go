package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/test/gitserver"
)

// The Git server goes away: the reconciler deletes nothing, says why, and
// catches up with what was committed meanwhile once the server is back.
func TestAnUnreachableRemoteDeletesNothing(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	gitRoot := t.TempDir()
	server := gitserver.Start(t, gitRoot, gitserver.Options{})
	names := []string{"gone-a", "gone-b"}
	repo, sha := newFleetRepo(t, gitRoot, "gone", "gone", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-gone", fleetSpec{url: server.URL(repo.Name)})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	server.Stop()
	// Meanwhile the team removes one cluster and adds another; the server
	// being down, the reconciler cannot know.
	repo.RemoveFiles(t, "gone-b is no longer needed", clusterFile("gone-b"))
	sha = repo.CommitFiles(t, "gone-c", map[string]string{clusterFile("gone-c"): clusterYAML("gone-c", "gone", "1")})
	for range 2 { // a second attempt, after a failed one, deletes nothing either
		f := h.requestReconcile(fleet, time.Minute)
		msg := fleetNotReady(t, f)
		if !strings.Contains(msg, "127.0.0.1") {
			t.Errorf("the Fleet's message should name the remote it could not reach: %s", msg)
		}
		if !hasReason(f.Status.Conditions, "GitOperationFailed") {
			t.Errorf("Fleet Ready reason should be GitOperationFailed: %s", fleetState(f))
		}
		h.assertUnchanged(before, names...)
	}

	if err := server.Resume(); err != nil {
		t.Fatal(err)
	}
	h.requestReconcile(fleet, 2*time.Minute)
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, "gone-a", "gone-c")
	if _, ok := h.virtualCluster("gone-b"); ok {
		t.Errorf("gone-b, removed while the remote was down, was not pruned once it came back")
	}
}

// The remote starts refusing warren's credentials (a revoked token): the
// reconciler deletes nothing and says why; it catches up once the Secret
// holds working credentials again.
func TestAnUnauthorisedRemoteDeletesNothing(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	gitRoot := t.TempDir()
	// Over https: warren never sends credentials over plain http.
	server := gitserver.Start(t, gitRoot, gitserver.Options{Username: "warren", Password: "s3cret-token", TLS: true})
	names := []string{"auth-a", "auth-b"}
	repo, sha := newFleetRepo(t, gitRoot, "auth", "auth", names...)
	startReconciler(t, plane, reconcilerOptions{})
	ns := "e2e-auth"
	if err := h.c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	setPassword := func(password string) {
		secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"},
			StringData: map[string]string{"username": "warren", "password": password, "ca.crt": string(server.CACertPEM())}}
		if err := h.c.Patch(context.Background(), secret, client.Apply, client.FieldOwner("e2e"), client.ForceOwnership); err != nil {
			t.Fatal(err)
		}
	}
	setPassword("s3cret-token")
	fleet := h.createFleet(ns, fleetSpec{url: server.URL(repo.Name), secretRef: "git"})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	setPassword("revoked")
	sha = repo.RemoveFiles(t, "auth-b is no longer needed", clusterFile("auth-b"))
	f := h.requestReconcile(fleet, time.Minute)
	msg := fleetNotReady(t, f)
	if !hasReason(f.Status.Conditions, "GitOperationFailed") {
		t.Errorf("Fleet Ready reason should be GitOperationFailed: %s", fleetState(f))
	}
	if strings.Contains(msg, "revoked") || strings.Contains(msg, "s3cret") {
		t.Errorf("the Fleet's message shows a password: %s", msg)
	}
	t.Logf("Fleet says: %s", msg)
	h.assertUnchanged(before, names...)

	setPassword("s3cret-token")
	h.requestReconcile(fleet, 2*time.Minute)
	h.waitFleetApplied(fleet, sha, 3*time.Minute)
	if _, ok := h.virtualCluster("auth-b"); ok {
		t.Errorf("auth-b, removed while the credentials were refused, was not pruned once they worked")
	}
}
