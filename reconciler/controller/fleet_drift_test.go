package controller

import (
	"maps"
	"testing"

	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
)

// After its first reconcile a cluster unchanged in Git is known to the
// reconciler by its objects' digests alone. Someone changes its API
// Service's selector and deletes its syncer's ServiceAccount by hand: the
// next reconcile renders that cluster again (its PKI Secret read again) and
// sets both back, and writes nothing of the other cluster.
func TestFleetPhasesSetBackObjectsChangedByHandOnACachedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	repo.CommitFiles(t, "two clusters", map[string]string{
		"policies/team-a.yaml": fleettest.Policy,
		"clusters/alpha.yaml":  fleettest.Cluster("alpha"),
		"clusters/bravo.yaml":  fleettest.Cluster("bravo"),
	})
	c, reconcile := fleetInProcess(t, repo)
	ctx := t.Context()
	if f := reconcile(); !conditions.IsReady(f) {
		t.Fatalf("not applied: %+v", f.Status.Conditions)
	}
	names := func(name string) render.Names {
		var vc v1alpha1.VirtualCluster
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
			t.Fatal(err)
		}
		return render.NamesFor(&vc)
	}
	alpha, bravo := names("alpha"), names("bravo")
	service := func(n render.Names) *corev1.Service {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: n.Namespace, Name: n.Service}, &svc); err != nil {
			t.Fatal(err)
		}
		return &svc
	}
	rendered := maps.Clone(service(alpha).Spec.Selector)
	bravoVersion := service(bravo).ResourceVersion

	edited := service(alpha)
	edited.Spec.Selector = map[string]string{"app": "changed-by-hand"}
	if err := c.Update(ctx, edited, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	account := &corev1.ServiceAccount{}
	account.Namespace, account.Name = alpha.Namespace, alpha.SyncerServiceAccount
	if err := c.Delete(ctx, account); err != nil {
		t.Fatal(err)
	}

	if f := reconcile(); !conditions.IsReady(f) {
		t.Fatalf("not Ready after the hand edits: %+v", f.Status.Conditions)
	}
	if got := service(alpha).Spec.Selector; !maps.Equal(got, rendered) {
		t.Errorf("alpha's Service selector is %v, want it set back to %v", got, rendered)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(account), &corev1.ServiceAccount{}); err != nil {
		t.Errorf("alpha's deleted ServiceAccount was not made again: %v (not found: %v)", err, apierrors.IsNotFound(err))
	}
	if v := service(bravo).ResourceVersion; v != bravoVersion {
		t.Errorf("bravo, unchanged, was written: resourceVersion %s → %s", bravoVersion, v)
	}
}
