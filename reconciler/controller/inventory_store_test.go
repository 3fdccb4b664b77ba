package controller

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
)

// fleetInventory is an inventory of n clusters of 15 objects each, shaped
// as warren records them, plus one object of the Fleet itself.
func fleetInventory(n int, digest string) *apply.Inventory {
	var entries []apply.Entry
	kinds := []string{"_Namespace", "apps_StatefulSet", "_Service", "_Secret", "_ConfigMap", "_ServiceAccount",
		"rbac.authorization.k8s.io_Role", "rbac.authorization.k8s.io_RoleBinding", "_ResourceQuota", "_LimitRange",
		"networking.k8s.io_NetworkPolicy", "_Service", "_Secret", "_ConfigMap", "networking.k8s.io_NetworkPolicy"}
	for c := range n {
		cluster := fmt.Sprintf("cluster-%05d", c)
		for k, kind := range kinds {
			entries = append(entries, apply.Entry{
				ID:      fmt.Sprintf("vc-%s_%s-object-%d_%s", cluster, cluster, k, kind),
				Version: "v1", Cluster: cluster, Host: "", Digest: digest + fmt.Sprintf("%018x", c*100+k),
				Observed: fmt.Sprintf("mf%016x", c*31+k),
			})
		}
	}
	entries = append(entries, apply.Entry{ID: "_cluster-00000_warren.dev_VirtualCluster", Version: "v1alpha1", Host: "east", Digest: "d", Observed: "rv12"})
	return apply.Entries(entries)
}

// Every field of every entry survives the ConfigMaps, empty ones included.
func TestInventoryChunksRoundTrip(t *testing.T) {
	inv := fleetInventory(40, "abcdef")
	_, chunks := chunksOf(inv, 1)
	var back []apply.Entry
	for _, data := range chunks {
		got, err := decodeChunk(data)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, got...)
	}
	if got := apply.Entries(back); !slices.Equal(got.Entries, inv.Entries) {
		t.Fatalf("decoded %d entries that differ from the %d encoded", len(got.Entries), len(inv.Entries))
	}
}

// At 5,000 clusters each ConfigMap stays within its bound, and a change to
// one cluster's objects changes exactly one of them.
func TestInventoryChunksAreBoundedAndAChangeRewritesOne(t *testing.T) {
	inv := fleetInventory(5000, "abcdef")
	buckets, chunks := chunksOf(inv, 1)
	for i, data := range chunks {
		size := 0
		for k, v := range data {
			size += len(k) + len(v)
		}
		if size > maxChunkBytes {
			t.Errorf("chunk %d holds %d bytes, over %d", i, size, maxChunkBytes)
		}
	}
	t.Logf("5,000 clusters: %d buckets, %d chunks", buckets, len(chunks))

	changed := apply.Entries(inv.Entries)
	for i := range changed.Entries {
		if changed.Entries[i].Cluster == "cluster-01234" {
			changed.Entries[i].Digest = "changed"
		}
	}
	again, after := chunksOf(changed, buckets)
	if again != buckets {
		t.Fatalf("one changed cluster moved the inventory from %d to %d buckets", buckets, again)
	}
	differ := 0
	for _, i := range slices.Sorted(maps.Keys(chunks)) {
		if chunkDigest(chunks[i], "") != chunkDigest(after[i], "") {
			differ++
		}
	}
	if differ != 1 {
		t.Errorf("a change to one cluster changed %d chunks, want 1", differ)
	}
}

// The number of buckets does not swing with every cluster added or
// removed: it grows when a chunk would overflow and shrinks only when a
// quarter of them would do.
func TestInventoryBucketsHoldUntilFarFewerWouldDo(t *testing.T) {
	big, _ := chunksOf(fleetInventory(3000, "abcdef"), 1)
	if big < 4 {
		t.Fatalf("3,000 clusters fit in %d bucket(s): the bound is not exercised", big)
	}
	if n, _ := chunksOf(fleetInventory(2900, "abcdef"), big); n != big {
		t.Errorf("removing a few clusters moved %d buckets to %d", big, n)
	}
	if n, _ := chunksOf(fleetInventory(10, "abcdef"), big); n != 1 {
		t.Errorf("10 clusters kept %d buckets, want 1", n)
	}
	if n, _ := chunksOf(nil, big); n != 1 {
		t.Errorf("an empty inventory kept %d buckets, want 1", n)
	}
}

// A chunk that is not what warren writes is refused with where and why,
// never read as fewer objects.
func TestInventoryChunkWithABadLineIsAnError(t *testing.T) {
	for _, data := range []map[string]string{
		{"alpha": "ns_name__Secret v1 - d\n"},
		{"alpha": "- v1 - d o\n"},
	} {
		if _, err := decodeChunk(data); err == nil {
			t.Errorf("decodeChunk(%q) gave no error", data)
		}
	}
}

// Names stay valid however long the Fleet's name.
func TestInventoryNamesOfALongFleet(t *testing.T) {
	long := ""
	for len(long) < 253 {
		long += "fleet-"
	}
	long = long[:253]
	if n := chunkName(long, 63); len(n) > 253 {
		t.Errorf("chunk name of %d characters", len(n))
	}
	if v := inventoryLabelValue(long); len(v) > 63 {
		t.Errorf("label value of %d characters", len(v))
	}
	if chunkName("fleet", 3) != "fleet-inventory-3" || inventoryLabelValue("fleet") != "fleet" {
		t.Errorf("a short name was changed: %s, %s", chunkName("fleet", 3), inventoryLabelValue("fleet"))
	}
}

// requestCounts are the lists and writes that reached a countingClient.
type requestCounts struct{ lists, writes int }

// countingClient is a fake API server that counts the lists and writes it
// is sent.
func countingClient() (client.Client, *requestCounts) {
	n := &requestCounts{}
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			n.lists++
			return c.List(ctx, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.writes++
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			n.writes++
			return c.Update(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			n.writes++
			return c.Delete(ctx, obj, opts...)
		},
	}).Build()
	return c, n
}

// A new Fleet's chunks are listed once, when its first reconcile loads
// them; saving and the reconciles after read the copy in memory.
func TestANewFleetsInventoryIsListedOnce(t *testing.T) {
	fleet := &v1alpha1.Fleet{ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform", UID: "fleet-uid"}}
	api, sent := countingClient()
	st := &inventoryStore{client: api, reader: api}
	ctx := t.Context()
	if inv, err := st.load(ctx, fleet); err != nil || inv != nil {
		t.Fatalf("a new Fleet's inventory: %v, %v", inv, err)
	}
	inv := fleetInventory(3, "abcdef")
	if err := st.save(ctx, fleet, inv); err != nil {
		t.Fatal(err)
	}
	got, err := st.load(ctx, fleet)
	if err != nil || got != inv {
		t.Fatalf("the inventory after saving: %v, %v", got, err)
	}
	if sent.lists != 1 {
		t.Errorf("the chunks were listed %d times, want once", sent.lists)
	}
	var chunks corev1.ConfigMapList
	if err := api.List(ctx, &chunks); err != nil || len(chunks.Items) != len(fleet.Status.Inventory.ConfigMaps) || len(chunks.Items) == 0 {
		t.Fatalf("%d chunks written, %d recorded (%v)", len(chunks.Items), len(fleet.Status.Inventory.ConfigMaps), err)
	}
	// A status another writer changed is read again.
	listed := sent.lists
	fleet.Status.Inventory.ConfigMaps[0].Digest = "elsewhere"
	if _, err := st.load(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	if sent.lists != listed+1 {
		t.Errorf("a changed status: the chunks were listed %d times, want once", sent.lists-listed)
	}
}

// Saving the inventory the chunks already hold (a no-op reconcile) writes
// nothing and records the same chunks; a changed entry after it is still
// written, to its one chunk.
func TestSavingAnUnchangedInventoryWritesNothing(t *testing.T) {
	fleet := &v1alpha1.Fleet{ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform", UID: "fleet-uid"}}
	api, sent := countingClient()
	st := &inventoryStore{client: api, reader: api}
	ctx := t.Context()
	if _, err := st.load(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	if err := st.save(ctx, fleet, fleetInventory(400, "abcdef")); err != nil {
		t.Fatal(err)
	}
	recorded := fleet.Status.Inventory.DeepCopy()
	if len(recorded.ConfigMaps) < 2 {
		t.Fatalf("want several chunks for this test, got %d", len(recorded.ConfigMaps))
	}
	written := sent.writes

	same := fleetInventory(400, "abcdef") // equal entries, not the same slice
	if err := st.save(ctx, fleet, same); err != nil {
		t.Fatal(err)
	}
	if sent.writes != written {
		t.Errorf("saving an unchanged inventory made %d writes", sent.writes-written)
	}
	if !reflect.DeepEqual(fleet.Status.Inventory, recorded) {
		t.Errorf("the status after an unchanged save: %+v, want %+v", fleet.Status.Inventory, recorded)
	}

	changed := fleetInventory(400, "abcdef")
	changed.Entries[0].Observed = "edited"
	if err := st.save(ctx, fleet, changed); err != nil {
		t.Fatal(err)
	}
	if sent.writes != written+1 {
		t.Errorf("one changed entry made %d writes, want 1", sent.writes-written)
	}
	read, err := StoredInventory(ctx, api, fleet)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read.Entries, changed.Entries) {
		t.Errorf("the chunks do not hold the changed inventory")
	}
}

// The inventory save of a no-op reconcile at 5,000 clusters (75,000
// entries).
func BenchmarkSavingAnUnchangedInventoryOf5000Clusters(b *testing.B) {
	fleet := &v1alpha1.Fleet{ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform", UID: "fleet-uid"}}
	api := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	st := &inventoryStore{client: api, reader: api}
	if _, err := st.load(b.Context(), fleet); err != nil {
		b.Fatal(err)
	}
	if err := st.save(b.Context(), fleet, fleetInventory(5000, "abcdef")); err != nil {
		b.Fatal(err)
	}
	same := fleetInventory(5000, "abcdef")
	b.ResetTimer()
	for b.Loop() {
		if err := st.save(b.Context(), fleet, same); err != nil {
			b.Fatal(err)
		}
	}
}
