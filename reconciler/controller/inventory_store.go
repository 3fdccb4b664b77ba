package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
)

// A Fleet's inventory lives in ConfigMaps in its namespace, not in its
// status: at thousands of clusters the list of what it owns is megabytes,
// more than one object may hold. Each ConfigMap ("chunk") holds the entries
// of the clusters whose name hashes to it, one data key per cluster, so a
// commit that changes one cluster rewrites one chunk. The ConfigMaps are the
// truth; the Fleet's status lists them with a digest of each, which only
// tells a reconciler whether the copy it keeps in memory is still current.
// Each chunk is owned by its Fleet and carries a finalizer that only the
// Fleet's own finalizer removes: deleting the Fleet's namespace must not
// lose the list of what to prune before the Fleet has pruned it.
const (
	// maxChunkBytes bounds the data of one chunk, far below the API
	// server's limit on an object, so rewriting one stays cheap.
	maxChunkBytes = 256 << 10
	// bucketsAnnotation on a chunk records how many chunks the clusters
	// are hashed over.
	bucketsAnnotation = "warren.dev/inventory-buckets"
	// fleetKey holds the entries that belong to no cluster.
	fleetKey = "_fleet"
)

// inventoryStore reads and writes Fleets' inventories, keeping the last
// one of each Fleet in memory.
type inventoryStore struct {
	client client.Client // writes
	reader client.Reader // reads the API server, not a cache

	mu    sync.Mutex
	known map[types.UID]*storedInventory
}

// storedInventory is a Fleet's inventory as its chunks hold it.
type storedInventory struct {
	inv     *apply.Inventory
	buckets int
	chunks  map[string]storedChunk // ConfigMap name → chunk
}

type storedChunk struct {
	digest          string
	resourceVersion string
}

// load returns the Fleet's inventory: the copy in memory when the Fleet's
// status says its chunks are as this reconciler last wrote or read them,
// else what the chunks hold (with the entries an earlier version of warren
// kept in the status).
func (st *inventoryStore) load(ctx context.Context, fleet *v1alpha1.Fleet) (*apply.Inventory, error) {
	if s := st.current(fleet); s != nil {
		return s.inv, nil
	}
	s, err := st.read(ctx, fleet)
	if err != nil {
		return nil, err
	}
	st.remember(fleet.UID, s)
	return s.inv, nil
}

// current is the copy in memory, if the Fleet's status still matches it.
func (st *inventoryStore) current(fleet *v1alpha1.Fleet) *storedInventory {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.known[fleet.UID]
	recorded := fleet.Status.Inventory
	if s != nil && recorded == nil && len(s.chunks) == 0 {
		// A new Fleet: nothing recorded, and no chunk when it was read.
		return s
	}
	if s == nil || recorded == nil || len(recorded.Entries) > 0 || len(recorded.ConfigMaps) != len(s.chunks) {
		return nil
	}
	for _, c := range recorded.ConfigMaps {
		if s.chunks[c.Name].digest != c.Digest {
			return nil
		}
	}
	return s
}

func (st *inventoryStore) remember(uid types.UID, s *storedInventory) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.known == nil {
		st.known = map[types.UID]*storedInventory{}
	}
	if s == nil {
		delete(st.known, uid)
		return
	}
	st.known[uid] = s
}

// read lists the Fleet's chunks and decodes them.
func (st *inventoryStore) read(ctx context.Context, fleet *v1alpha1.Fleet) (*storedInventory, error) {
	chunks, err := st.list(ctx, fleet)
	if err != nil {
		return nil, err
	}
	s := &storedInventory{buckets: 1, chunks: map[string]storedChunk{}}
	var entries []apply.Entry
	for _, cm := range chunks {
		got, err := decodeChunk(cm.Data)
		if err != nil {
			return nil, fmt.Errorf("inventory ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
		}
		entries = append(entries, got...)
		s.chunks[cm.Name] = storedChunk{digest: chunkDigest(cm.Data, cm.Annotations[bucketsAnnotation]), resourceVersion: cm.ResourceVersion}
		if n, err := strconv.Atoi(cm.Annotations[bucketsAnnotation]); err == nil && n > s.buckets {
			s.buckets = n
		}
	}
	if legacy := fleet.Status.Inventory; legacy != nil {
		entries = append(entries, legacy.Entries...)
	}
	if len(entries) > 0 {
		s.inv = apply.Merge(apply.Entries(entries))
	}
	return s, nil
}

// list returns the Fleet's chunks, by name: the ConfigMaps that carry its
// label and are owned by it.
func (st *inventoryStore) list(ctx context.Context, fleet *v1alpha1.Fleet) ([]*corev1.ConfigMap, error) {
	var list corev1.ConfigMapList
	if err := st.reader.List(ctx, &list, client.InNamespace(fleet.Namespace), client.MatchingLabels{v1alpha1.InventoryOfLabel: inventoryLabelValue(fleet.Name)}); err != nil {
		return nil, fmt.Errorf("reading the Fleet's inventory: %w", err)
	}
	var out []*corev1.ConfigMap
	for i := range list.Items {
		if ownedByFleet(&list.Items[i], fleet) {
			out = append(out, &list.Items[i])
		}
	}
	slices.SortFunc(out, func(a, b *corev1.ConfigMap) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// save writes inv to the Fleet's chunks, only those whose content changed,
// deletes the chunks it no longer needs, and records them in the Fleet's
// status. On an error the copy in memory is dropped, so the next reconcile
// reads the chunks again.
func (st *inventoryStore) save(ctx context.Context, fleet *v1alpha1.Fleet, inv *apply.Inventory) error {
	prev := st.current(fleet)
	if prev != nil && prev.inv != nil && inv != nil && slices.Equal(prev.inv.Entries, inv.Entries) {
		// What the chunks hold already (a no-op reconcile): not encoded and
		// hashed again, which at 75,000 entries costs seconds.
		fleet.Status.Inventory = prev.status(inv)
		return nil
	}
	if prev == nil {
		var err error
		if prev, err = st.read(ctx, fleet); err != nil {
			return err
		}
	}
	next, err := st.write(ctx, fleet, prev, inv)
	st.remember(fleet.UID, next)
	if err != nil {
		return fmt.Errorf("writing the Fleet's inventory: %w", err)
	}
	fleet.Status.Inventory = next.status(inv)
	return nil
}

// write makes the chunks hold inv, starting from prev; it returns what they
// hold, or nil with an error.
func (st *inventoryStore) write(ctx context.Context, fleet *v1alpha1.Fleet, prev *storedInventory, inv *apply.Inventory) (*storedInventory, error) {
	buckets, data := chunksOf(inv, prev.buckets)
	next := &storedInventory{inv: inv, buckets: buckets, chunks: map[string]storedChunk{}}
	for _, i := range slices.Sorted(maps.Keys(data)) {
		name := chunkName(fleet.Name, i)
		digest := chunkDigest(data[i], strconv.Itoa(buckets))
		old, had := prev.chunks[name]
		if had && old.digest == digest {
			next.chunks[name] = old
			continue
		}
		cm := st.chunk(fleet, name, buckets, data[i])
		var err error
		if had {
			cm.ResourceVersion = old.resourceVersion
			err = st.client.Update(ctx, cm)
		} else {
			err = st.create(ctx, fleet, cm)
		}
		if err != nil {
			return nil, fmt.Errorf("ConfigMap %s/%s: %w", fleet.Namespace, name, err)
		}
		next.chunks[name] = storedChunk{digest: digest, resourceVersion: cm.ResourceVersion}
	}
	for _, name := range slices.Sorted(maps.Keys(prev.chunks)) {
		if _, ok := next.chunks[name]; !ok {
			if err := st.remove(ctx, fleet, name, prev.chunks[name]); err != nil {
				return nil, err
			}
		}
	}
	return next, nil
}

// create creates a chunk, or takes over one this Fleet left behind (a crash
// before its status was written); one of another owner is an error.
func (st *inventoryStore) create(ctx context.Context, fleet *v1alpha1.Fleet, cm *corev1.ConfigMap) error {
	err := st.client.Create(ctx, cm)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	var live corev1.ConfigMap
	if err := st.reader.Get(ctx, client.ObjectKeyFromObject(cm), &live); err != nil {
		return err
	}
	if !ownedByFleet(&live, fleet) || live.Labels[v1alpha1.InventoryOfLabel] != inventoryLabelValue(fleet.Name) {
		return fmt.Errorf("it exists and is not this Fleet's inventory; rename or delete it")
	}
	cm.ResourceVersion = live.ResourceVersion
	return st.client.Update(ctx, cm)
}

// remove deletes a chunk no longer needed, its finalizer first.
func (st *inventoryStore) remove(ctx context.Context, fleet *v1alpha1.Fleet, name string, c storedChunk) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: fleet.Namespace, Name: name}}
	if err := st.reader.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !ownedByFleet(cm, fleet) {
		return nil
	}
	if controllerutil.RemoveFinalizer(cm, v1alpha1.InventoryFinalizer) {
		if err := st.client.Update(ctx, cm); err != nil {
			return fmt.Errorf("ConfigMap %s/%s: %w", fleet.Namespace, name, client.IgnoreNotFound(err))
		}
	}
	uid := cm.UID
	if err := st.client.Delete(ctx, cm, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("ConfigMap %s/%s: %w", fleet.Namespace, name, err)
	}
	return nil
}

// release deletes all the Fleet's chunks, once its finalizer is done with
// them.
func (st *inventoryStore) release(ctx context.Context, fleet *v1alpha1.Fleet) error {
	chunks, err := st.list(ctx, fleet)
	if err != nil {
		return err
	}
	var errs []error
	for _, cm := range chunks {
		errs = append(errs, st.remove(ctx, fleet, cm.Name, storedChunk{}))
	}
	st.remember(fleet.UID, nil)
	return errors.Join(errs...)
}

// chunk is the ConfigMap that holds one chunk.
func (st *inventoryStore) chunk(fleet *v1alpha1.Fleet, name string, buckets int, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: fleet.Namespace,
			Name:      name,
			Labels: map[string]string{
				v1alpha1.InventoryOfLabel: inventoryLabelValue(fleet.Name),
				v1alpha1.ManagedByLabel:   v1alpha1.ManagedByValue,
			},
			Annotations: map[string]string{bucketsAnnotation: strconv.Itoa(buckets)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(),
				Kind:       v1alpha1.FleetKind,
				Name:       fleet.Name,
				UID:        fleet.UID,
				Controller: ptr.To(true),
			}},
			Finalizers: []string{v1alpha1.InventoryFinalizer},
		},
		Data: data,
	}
}

// status is what the Fleet's status says of the stored inventory.
func (s *storedInventory) status(inv *apply.Inventory) *v1alpha1.FleetInventory {
	out := &v1alpha1.FleetInventory{}
	if inv != nil {
		out.Objects = len(inv.Entries)
		out.Clusters = len(apply.Clusters(inv))
	}
	for _, name := range slices.Sorted(maps.Keys(s.chunks)) {
		out.ConfigMaps = append(out.ConfigMaps, v1alpha1.InventoryConfigMap{Name: name, Digest: s.chunks[name].digest})
	}
	return out
}

func ownedByFleet(cm *corev1.ConfigMap, fleet *v1alpha1.Fleet) bool {
	for _, ref := range cm.OwnerReferences {
		if ref.UID == fleet.UID && ref.Kind == v1alpha1.FleetKind {
			return true
		}
	}
	return false
}

// chunksOf splits inv into chunks of at most maxChunkBytes, hashing
// clusters over a power of two of buckets: the current number while it
// fits and is not four times too many, else the fewest that fit. It
// returns that number and each non-empty chunk's data, by bucket.
func chunksOf(inv *apply.Inventory, current int) (int, map[int]map[string]string) {
	byKey := encodeEntries(inv)
	if current < 1 {
		current = 1
	}
	fewest := 1
	for !fits(byKey, fewest) {
		fewest *= 2
	}
	buckets := current
	if !fits(byKey, current) || fewest*4 <= current {
		buckets = fewest
	}
	out := map[int]map[string]string{}
	for key, value := range byKey {
		i := bucketOf(key, buckets)
		if out[i] == nil {
			out[i] = map[string]string{}
		}
		out[i][key] = value
	}
	return buckets, out
}

// fits reports whether every chunk stays within maxChunkBytes with the
// clusters hashed over buckets (a single cluster larger than that has a
// chunk of its own, whatever its size).
func fits(byKey map[string]string, buckets int) bool {
	size := map[int]int{}
	count := map[int]int{}
	for key, value := range byKey {
		i := bucketOf(key, buckets)
		size[i] += len(key) + len(value)
		count[i]++
	}
	for i, n := range size {
		if n > maxChunkBytes && count[i] > 1 {
			return false
		}
	}
	return true
}

func bucketOf(key string, buckets int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(buckets))
}

// chunkName is the ConfigMap name of a Fleet's chunk i, shortened with a
// hash for a Fleet whose name leaves no room.
func chunkName(fleet string, i int) string {
	suffix := "-inventory-" + strconv.Itoa(i)
	if len(fleet)+len(suffix) > 253 {
		sum := sha256.Sum256([]byte(fleet))
		fleet = fleet[:253-len(suffix)-9] + "-" + hex.EncodeToString(sum[:4])
	}
	return fleet + suffix
}

// inventoryLabelValue is a Fleet's name as a label value (at most 63
// characters: a longer name is shortened with a hash).
func inventoryLabelValue(fleet string) string {
	if len(fleet) <= 63 {
		return fleet
	}
	sum := sha256.Sum256([]byte(fleet))
	return strings.TrimRight(fleet[:54], "-.") + "-" + hex.EncodeToString(sum[:4])
}

// chunkDigest hashes a chunk's data and its number of buckets.
func chunkDigest(data map[string]string, buckets string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(data)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, data[k])
	}
	h.Write([]byte(buckets))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// encodeEntries writes inv as one text per cluster (key fleetKey for the
// entries of no cluster): a line per object, sorted,
// `<id> <version> <host> <digest> <observed>`, "-" for an empty field.
func encodeEntries(inv *apply.Inventory) map[string]string {
	out := map[string]*strings.Builder{}
	if inv != nil {
		for _, e := range inv.Entries {
			key := e.Cluster
			if key == "" {
				key = fleetKey
			}
			b := out[key]
			if b == nil {
				b = &strings.Builder{}
				out[key] = b
			}
			for i, f := range []string{e.ID, e.Version, e.Host, e.Digest, e.Observed} {
				if i > 0 {
					b.WriteByte(' ')
				}
				if f == "" {
					f = "-"
				}
				b.WriteString(f)
			}
			b.WriteByte('\n')
		}
	}
	texts := make(map[string]string, len(out))
	for k, b := range out {
		texts[k] = b.String()
	}
	return texts
}

// decodeChunk reads the entries encodeEntries wrote.
func decodeChunk(data map[string]string) ([]apply.Entry, error) {
	var out []apply.Entry
	for key, text := range data {
		cluster := key
		if key == fleetKey {
			cluster = ""
		}
		for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if line == "" {
				continue
			}
			f := strings.Split(line, " ")
			if len(f) != 5 {
				return nil, fmt.Errorf("data[%s] line %d: want 5 fields, got %d", key, n+1, len(f))
			}
			for i := range f {
				if f[i] == "-" {
					f[i] = ""
				}
			}
			if f[0] == "" || f[1] == "" {
				return nil, fmt.Errorf("data[%s] line %d: no object ID or version", key, n+1)
			}
			out = append(out, apply.Entry{ID: f[0], Version: f[1], Host: f[2], Cluster: cluster, Digest: f[3], Observed: f[4]})
		}
	}
	return out, nil
}

// store is the reconciler's inventory store, set up on first use.
func (r *FleetReconciler) store() *inventoryStore {
	r.inventories.mu.Lock()
	defer r.inventories.mu.Unlock()
	if r.inventories.client == nil {
		r.inventories.client, r.inventories.reader = r.Client, r.APIReader
	}
	return &r.inventories
}

// StoredInventory reads the inventory a Fleet's ConfigMaps hold (with any
// entries an earlier version of warren kept in its status): what warren
// would prune if every cluster were removed. reader must read the API
// server, not a cache.
func StoredInventory(ctx context.Context, reader client.Reader, fleet *v1alpha1.Fleet) (*apply.Inventory, error) {
	st := &inventoryStore{reader: reader}
	s, err := st.read(ctx, fleet)
	if err != nil {
		return nil, err
	}
	if s.inv == nil {
		return &apply.Inventory{}, nil
	}
	return s.inv, nil
}
