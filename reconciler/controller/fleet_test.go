package controller

import (
	"slices"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

// The Fleet reconcile, in process, phase by phase, on a real API server: a
// revision applies three clusters (VirtualClusters, PKI Secrets and rendered
// host objects, all in the inventory); the next one removes two of the three
// and the mass-prune guard holds it back, deleting nothing and saying why.
func TestFleetPhasesApplyThenHoldBackAMassPrune(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	repo.CommitFiles(t, "three clusters", map[string]string{
		"policies/team-a.yaml":  fleettest.Policy,
		"clusters/alpha.yaml":   fleettest.Cluster("alpha"),
		"clusters/bravo.yaml":   fleettest.Cluster("bravo"),
		"clusters/charlie.yaml": fleettest.Cluster("charlie"),
	})
	c, reconcile := fleetInProcess(t, repo)
	ctx := t.Context()

	timedBefore := phasesTimed(t, "fleets", "fleet")
	applied := reconcile()
	if !conditions.IsReady(applied) || applied.Status.AdmittedClusters != 3 {
		t.Fatalf("first revision not applied: %+v", applied.Status.Conditions)
	}
	// Each phase it went through is timed for operators, under its name.
	timed := phasesTimed(t, "fleets", "fleet")
	names := []string{"inventory-load", "inventory-save", "status"}
	for _, p := range (&FleetReconciler{}).phases() {
		names = append(names, p.name)
	}
	for _, p := range names {
		if timed[p] <= timedBefore[p] {
			t.Errorf("%s{phase=%q} did not count the reconcile (%d before, %d after)", PhaseDurationMetric, p, timedBefore[p], timed[p])
		}
	}
	for _, name := range []string{"alpha", "bravo", "charlie"} {
		var vc v1alpha1.VirtualCluster
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
			t.Fatalf("VirtualCluster %s: %v", name, err)
		}
		names := render.NamesFor(&vc)
		var pki corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: names.Namespace, Name: names.PKISecret}, &pki); err != nil {
			t.Fatalf("the PKI phase made no Secret for %s: %v", name, err)
		}
		if !conditions.IsTrue(&vc, v1alpha1.AppliedCondition) {
			t.Errorf("cluster %s is not Applied: %+v", name, vc.Status.Conditions)
		}
	}
	inventory := len(storedEntries(t, c, applied))
	if st := applied.Status.Inventory; st == nil || len(st.Entries) > 0 || st.Objects != inventory || len(st.ConfigMaps) == 0 {
		t.Errorf("status.inventory = %+v, want %d objects counted and listed in ConfigMaps, not in the status", st, inventory)
	}

	repo.RemoveFiles(t, "remove two of three", "clusters/bravo.yaml", "clusters/charlie.yaml")
	held := reconcile()
	ready := conditions.Get(held, meta.ReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.PruneBlockedReason {
		t.Fatalf("Ready = %+v, want False with reason %s", ready, v1alpha1.PruneBlockedReason)
	}
	if !conditions.IsTrue(held, v1alpha1.PruneBlockedCondition) {
		t.Errorf("no PruneBlocked condition: %+v", held.Status.Conditions)
	}
	if got := len(storedEntries(t, c, held)); got != inventory {
		t.Errorf("the inventory went from %d to %d entries while the prune was held back", inventory, got)
	}
	if held.Status.LastAppliedRevision == held.Status.LastAttemptedRevision {
		t.Errorf("a held-back prune recorded the revision as applied in full: %+v", held.Status)
	}
	for _, name := range []string{"bravo", "charlie"} {
		var vc v1alpha1.VirtualCluster
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
			t.Fatalf("VirtualCluster %s was deleted although the prune was held back: %v", name, err)
		}
		if cond := conditions.Get(&vc, v1alpha1.AdmittedCondition); cond == nil || cond.Status != metav1.ConditionFalse {
			t.Errorf("kept cluster %s does not say it is not admitted: %+v", name, vc.Status.Conditions)
		}
	}
}

// storedEntries reads what the Fleet's inventory ConfigMaps list.
func storedEntries(t *testing.T, c client.Client, f *v1alpha1.Fleet) []v1alpha1.ResourceRef {
	t.Helper()
	inv, err := StoredInventory(t.Context(), c, f)
	if err != nil {
		t.Fatal(err)
	}
	return inv.Entries
}

// An inventory an earlier warren kept in the Fleet's status is read from
// there and moved into ConfigMaps, nothing lost, and a reconcile that
// changes nothing writes none of them.
func TestAnInventoryInTheStatusMovesToConfigMaps(t *testing.T) {
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
	applied := reconcile()
	entries := storedEntries(t, c, applied)

	// As an earlier warren left it: entries in the status, no ConfigMaps.
	var chunks corev1.ConfigMapList
	if err := c.List(ctx, &chunks, client.InNamespace(applied.Namespace), client.MatchingLabels{v1alpha1.InventoryOfLabel: applied.Name}); err != nil {
		t.Fatal(err)
	}
	for i := range chunks.Items {
		cm := &chunks.Items[i]
		cm.Finalizers = nil
		if err := c.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}
	legacy := applied.DeepCopy()
	legacy.Status.Inventory = &v1alpha1.FleetInventory{Entries: entries}
	if err := c.Status().Update(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	moved := reconcile()
	if st := moved.Status.Inventory; st == nil || len(st.Entries) > 0 || len(st.ConfigMaps) == 0 {
		t.Fatalf("status.inventory after the move = %+v", st)
	}
	if got := storedEntries(t, c, moved); !slices.Equal(got, entries) {
		t.Errorf("the ConfigMaps list %d entries, the status listed %d (or they differ)", len(got), len(entries))
	}
	if err := c.List(ctx, &chunks, client.InNamespace(moved.Namespace), client.MatchingLabels{v1alpha1.InventoryOfLabel: moved.Name}); err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, cm := range chunks.Items {
		versions[cm.Name] = cm.ResourceVersion
		if !slices.Contains(cm.Finalizers, v1alpha1.InventoryFinalizer) || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != moved.UID {
			t.Errorf("ConfigMap %s: finalizers %v, owners %+v", cm.Name, cm.Finalizers, cm.OwnerReferences)
		}
	}
	reconcile()
	if err := c.List(ctx, &chunks, client.InNamespace(moved.Namespace), client.MatchingLabels{v1alpha1.InventoryOfLabel: moved.Name}); err != nil {
		t.Fatal(err)
	}
	for _, cm := range chunks.Items {
		if versions[cm.Name] != cm.ResourceVersion {
			t.Errorf("a reconcile that changed nothing rewrote ConfigMap %s", cm.Name)
		}
	}
}

// fleetInProcess starts a control plane, creates a Fleet "fleets/fleet"
// reading repo, and returns a client and a function that runs the Fleet
// reconcile in process and returns the Fleet after it.
func fleetInProcess(t *testing.T, repo *gitserver.Repo) (client.Client, func() *v1alpha1.Fleet) {
	t.Helper()
	c, _, _ := planeWithFleetsNamespace(t)
	ctx := t.Context()
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fleets", Name: "fleet"},
		Spec:       v1alpha1.FleetSpec{URL: repo.FileURL(), Interval: metav1.Duration{Duration: time.Hour}},
	}
	if err := c.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	r := &FleetReconciler{
		Client: c, APIReader: c, ApplyClient: c,
		EventRecorder: record.NewFakeRecorder(100),
		CacheDir:      t.TempDir(),
		Render:        render.Options{ServiceCIDR: localkube.DefaultServiceCIDR, SyncerImage: "warren-syncer:test"},
		Version:       "test",
	}
	return c, func() *v1alpha1.Fleet {
		t.Helper()
		for range 2 { // the first pass only adds the finalizer
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(fleet)}); err != nil {
				t.Fatalf("reconcile: %v", err)
			}
		}
		var f v1alpha1.Fleet
		if err := c.Get(ctx, client.ObjectKeyFromObject(fleet), &f); err != nil {
			t.Fatal(err)
		}
		return &f
	}
}

// planeWithFleetsNamespace starts a control plane with warren's CRDs and a
// namespace "fleets", and returns a client, the plane and the client's
// scheme.
func planeWithFleetsNamespace(t *testing.T) (client.Client, *localkube.Plane, *runtime.Scheme) {
	t.Helper()
	plane := localkube.ForTest(t, localkube.Options{})
	ctx := t.Context()
	if err := testkit.InstallCRDs(ctx, plane.Config); err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleets"}}); err != nil {
		t.Fatal(err)
	}
	return c, plane, scheme
}

// phasesTimed is how many durations PhaseDurationMetric holds per phase of
// one Fleet, from the registry a reconciler serves its metrics from.
func phasesTimed(t *testing.T, namespace, name string) map[string]uint64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != PhaseDurationMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == namespace && labels["name"] == name {
				out[labels["phase"]] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return out
}
