package apply

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// knownOnly is objects by their names and digests alone, as the Fleet
// controller gives a cluster whose render has not changed.
func knownOnly(objects []Object) []Object {
	out := make([]Object, len(objects))
	for i, o := range objects {
		out[i] = o.Known()
	}
	return out
}

// rerenders counts, per cluster, the calls of a Rerender that prepares the
// cluster's documents again, or fails for the clusters in fail.
type rerenders struct {
	t     *testing.T
	owner Owner
	docs  map[string][]string
	fail  map[string]error

	mu    sync.Mutex
	calls []string
}

func (r *rerenders) rerender(_ context.Context, cluster string) ([]Object, error) {
	r.mu.Lock()
	r.calls = append(r.calls, cluster)
	r.mu.Unlock()
	if err := r.fail[cluster]; err != nil {
		return nil, err
	}
	return Prepare(r.owner, objects(r.t, r.docs[cluster]...))
}

// Two clusters whose renders have not changed are given by their objects'
// digests alone. While the host holds them as warren left them, nothing is
// rendered or written. A ConfigMap of one edited by hand has that cluster,
// and only it, rendered again and set back in the same call. A cluster that
// drifted and cannot be rendered again is reported, nothing of it is
// written, and its inventory entries stay, so nothing of it is pruned.
func TestAClusterGivenByDigestsIsKeptUntilItDrifts(t *testing.T) {
	f := newFixture(t, "known")
	docs := map[string][]string{
		"known-a": {namespace("known-a"), configMap("known-a", "settings", "1"), configMap("known-a", "other", "x")},
		"known-b": {namespace("known-b"), configMap("known-b", "settings", "1")},
	}
	owner := Owner{Namespace: "warren-system", Name: "known"}
	r := &rerenders{t: t, owner: owner, docs: docs, fail: map[string]error{}}
	var all []Object
	for _, c := range []string{"known-a", "known-b"} {
		prepared, err := Prepare(owner, objects(t, docs[c]...))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, prepared...)
	}
	first, err := f.applier.ApplyObjects(f.ctx, all, r.rerender, nil)
	if err != nil || first.Written() != 5 {
		t.Fatalf("first apply: %v, wrote %d of 5", err, first.Written())
	}
	known := knownOnly(all)
	resources := []string{"namespaces", "configmaps"}

	before := writeRequests(t, resources...)
	same, err := f.applier.ApplyObjects(f.ctx, known, r.rerender, first.Inventory)
	if err != nil || same.Written() != 0 || len(r.calls) != 0 || writeRequests(t, resources...) != before {
		t.Fatalf("unchanged clusters by digest: %v, wrote %d, rendered again %v", err, same.Written(), r.calls)
	}
	if !reflect.DeepEqual(same.Inventory, first.Inventory) {
		t.Fatalf("the inventory changed: %v, then %v", first.Inventory.Entries, same.Inventory.Entries)
	}

	f.editByHand("known-a", "settings")
	_, bRV := f.configMapValue("known-b", "settings")
	repaired, err := f.applier.ApplyObjects(f.ctx, known, r.rerender, same.Inventory)
	if err != nil || !slices.Equal(r.calls, []string{"known-a"}) {
		t.Fatalf("after a hand edit: %v, rendered again %v, want known-a alone", err, r.calls)
	}
	if v, _ := f.configMapValue("known-a", "settings"); v != "1" || actions(repaired)["ConfigMap/known-a/settings"] != Configured || repaired.Written() != 1 {
		t.Fatalf("settings.value = %q, changes %v: want it alone set back to 1", v, repaired.Changes)
	}
	if _, rv := f.configMapValue("known-b", "settings"); rv != bRV {
		t.Fatal("the cluster that did not drift was written")
	}

	if err := f.kube.CoreV1().ConfigMaps("known-b").Delete(f.ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.fail["known-b"] = errors.New("its PKI Secret cannot be read")
	broken, err := f.applier.ApplyObjects(f.ctx, known, r.rerender, repaired.Inventory)
	if err != nil {
		t.Fatalf("a cluster that cannot be rendered again failed the whole apply: %v", err)
	}
	if len(broken.Unrendered) != 1 || broken.Unrendered[0].Cluster != "known-b" || broken.Written() != 0 {
		t.Fatalf("unrendered %v, wrote %d: want known-b alone reported and nothing written", broken.Unrendered, broken.Written())
	}
	if stale := Stale(repaired.Inventory, broken.Inventory); len(stale) != 0 {
		t.Fatalf("a cluster that could not be rendered again would lose %v", stale)
	}
}

// Prepare labels what it encodes as the Fleet's, and leaves the objects it
// is given as they were (the caller may still hold them).
func TestPrepareLeavesTheObjectsAlone(t *testing.T) {
	objs := objects(t, configMap("prep-a", "settings", "1"))
	prepared, err := Prepare(Owner{Namespace: "warren-system", Name: "prep"}, objs)
	if err != nil {
		t.Fatal(err)
	}
	if got := objs[0].GetLabels(); len(got) != 1 {
		t.Fatalf("the given object's labels became %v", got)
	}
	u, err := prepared[0].decode()
	if err != nil {
		t.Fatal(err)
	}
	labels := u.GetLabels()
	if labels[v1alpha1.FleetNameLabel] != "prep" || labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || labels[v1alpha1.ClusterLabel] != "prep-a" {
		t.Fatalf("prepared labels %v", labels)
	}
	if prepared[0].Cluster() != "prep-a" || prepared[0].digest == "" {
		t.Fatalf("prepared %+v", prepared[0].Known())
	}
	if _, err := prepared[0].Known().decode(); err == nil {
		t.Fatal("an object known by its digest alone could be written")
	}
}
