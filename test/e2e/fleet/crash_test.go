package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// warren-reconciler is killed (SIGKILL: no deferred status write) while it
// applies a Fleet's clusters, and started again: it converges to exactly one
// of everything, and keeps the PKI it had already made.
func TestAReconcilerKilledMidApplyConvergesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	ctx := context.Background()
	var names []string
	for i := range 16 {
		names = append(names, fmt.Sprintf("crash-%02d", i))
	}
	repo, sha := newFleetRepo(t, t.TempDir(), "crash", "crash", names...)
	ns := "e2e-crash"
	fleetSelector := labels.SelectorFromSet(labels.Set{v1alpha1.FleetNameLabel: "fleet", v1alpha1.FleetNamespaceLabel: ns}).String()

	// Watch for the first host object of the Fleet that is not a
	// namespace: namespaces are applied first, so the rest is under way.
	w, err := h.kube.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{LabelSelector: fleetSelector})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	rec := startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet(ns, fleetSpec{url: repo.FileURL()})
	deadline := time.After(2 * time.Minute)
	for killed := false; !killed; {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch on ConfigMaps ended")
			}
			if ev.Type == watch.Added {
				rec.Kill()
				killed = true
			}
		case <-deadline:
			t.Fatalf("no host object applied within 2m; %s", fleetState(h.fleet(fleet)))
		}
	}

	// The kill came mid-apply: some objects are there, the Fleet recorded
	// neither an inventory nor an applied revision.
	f := h.fleet(fleet)
	if f.Status.LastAppliedRevision != "" || len(h.inventory(f)) > 0 {
		t.Fatalf("the kill came after the apply finished, the story proves nothing: %s", fleetState(f))
	}
	partial := h.sweep(fleetSelector)
	statefulSets := 0
	for _, o := range partial {
		if o.Resource.Resource == "statefulsets" {
			statefulSets++
		}
	}
	t.Logf("at the kill: %d objects of the Fleet on the host, %d of %d StatefulSets", len(partial), statefulSets, len(names))
	if len(partial) == 0 {
		t.Fatal("nothing of the Fleet was on the host at the kill")
	}
	pkiBefore := map[string]string{}
	for _, o := range h.sweep(v1alpha1.ManagedByLabel + "=warren," + v1alpha1.ClusterLabel) {
		if o.Resource.Resource == "secrets" && strings.HasSuffix(o.Name, "-pki") {
			uid, err := h.kube.CoreV1().Secrets(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			pkiBefore[o.Namespace+"/"+o.Name] = string(uid.UID)
		}
	}

	rec.Restart()
	f = h.waitFleetApplied(fleet, sha, 3*time.Minute)
	h.waitClustersReady(3*time.Minute, names...)

	// Exactly one of everything: per cluster the same set of objects, and
	// every object warren applied for the Fleet is in its inventory once.
	// (Pods, claims, endpoints and revisions inherit the labels from what
	// warren applied; they are the host controllers', not warren's.)
	applied := 0
	for _, o := range h.sweep(fleetSelector) {
		if contains(o.Managers, "warren") {
			applied++
		}
	}
	inventory := h.inventory(f)
	if got, want := applied, len(inventory); got != want {
		t.Errorf("warren applied %d objects carrying the Fleet's labels, its inventory lists %d", got, want)
	}
	seen := map[string]bool{}
	for _, e := range inventory {
		if seen[e.ID] {
			t.Errorf("inventory lists %s twice", e.ID)
		}
		seen[e.ID] = true
	}
	var shape string
	for i, n := range names {
		objs := h.hostObjectsOf(n)
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.Resource.Resource]++
		}
		got := fmt.Sprint(kinds)
		if i == 0 {
			shape = got
			t.Logf("each cluster holds %s", shape)
		} else if got != shape {
			t.Errorf("cluster %s holds %s, cluster %s holds %s", n, got, names[0], shape)
		}
		for _, kind := range []string{"namespaces", "statefulsets", "pods", "persistentvolumeclaims"} {
			if kinds[kind] != 1 {
				t.Errorf("cluster %s has %d %s, want exactly 1", n, kinds[kind], kind)
			}
		}
	}
	for _, n := range names {
		if _, err := h.kube.CoreV1().Secrets("vc-"+n).Get(ctx, n+"-pki", metav1.GetOptions{}); err != nil {
			t.Errorf("cluster %s has no PKI Secret: %v", n, err)
		}
	}
	for key, uid := range pkiBefore {
		parts := strings.SplitN(key, "/", 2)
		s, err := h.kube.CoreV1().Secrets(parts[0]).Get(ctx, parts[1], metav1.GetOptions{})
		if err != nil || string(s.UID) != uid {
			t.Errorf("PKI Secret %s made before the kill was replaced (err %v): a cluster's CAs must never change", key, err)
		}
	}
}
