package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// Inventory is the set of host objects one Fleet owns; it is stored in the
// Fleet's status.
type Inventory = v1alpha1.ResourceInventory

// Entry is one object in an Inventory.
type Entry = v1alpha1.ResourceRef

// ObjectRef names one host object.
type ObjectRef struct {
	Group     string
	Version   string
	Kind      string
	Namespace string
	Name      string
}

// String is `Kind/namespace/name` (or `Kind/name` when cluster-scoped), the
// way warren names an object in conditions and events.
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// GroupVersionKind of the object.
func (r ObjectRef) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

func (r ObjectRef) id() string {
	return object.ObjMetadata{
		Namespace: r.Namespace,
		Name:      r.Name,
		GroupKind: schema.GroupKind{Group: r.Group, Kind: r.Kind},
	}.String()
}

func refOf(u *unstructured.Unstructured) ObjectRef {
	gvk := u.GroupVersionKind()
	return ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// RefOf returns the ObjectRef an inventory entry names.
func RefOf(e Entry) (ObjectRef, error) {
	m, err := object.ParseObjMetadata(e.ID)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("inventory entry %q: %w", e.ID, err)
	}
	return ObjectRef{Group: m.GroupKind.Group, Version: e.Version, Kind: m.GroupKind.Kind, Namespace: m.Namespace, Name: m.Name}, nil
}

// Stale returns the entries of previous that current no longer holds: the
// objects a prune would delete.
func Stale(previous, current *Inventory) []Entry {
	if previous == nil {
		return nil
	}
	keep := map[string]bool{}
	if current != nil {
		for _, e := range current.Entries {
			keep[e.ID] = true
		}
	}
	var stale []Entry
	for _, e := range previous.Entries {
		if !keep[e.ID] {
			stale = append(stale, e)
		}
	}
	return stale
}

// ForCluster returns the entries of inv that belong to the named virtual
// cluster (their warren.dev/cluster label when applied).
func ForCluster(inv *Inventory, cluster string) []Entry {
	if inv == nil {
		return nil
	}
	var out []Entry
	for _, e := range inv.Entries {
		if e.Cluster == cluster {
			out = append(out, e)
		}
	}
	return out
}

// Clusters names, sorted, the virtual clusters inv holds objects of.
func Clusters(inv *Inventory) []string {
	var out []string
	if inv == nil {
		return out
	}
	seen := map[string]bool{}
	for _, e := range inv.Entries {
		if e.Cluster != "" && !seen[e.Cluster] {
			seen[e.Cluster] = true
			out = append(out, e.Cluster)
		}
	}
	slices.Sort(out)
	return out
}

// Merge returns an inventory holding the entries of all given ones; for an
// ID present more than once the first occurrence wins. Use it to keep the
// objects of a cluster whose definition failed to load: merge its previous
// entries into the new inventory so the prune leaves them alone.
func Merge(invs ...*Inventory) *Inventory {
	seen := map[string]bool{}
	out := &Inventory{Entries: []Entry{}}
	for _, inv := range invs {
		if inv == nil {
			continue
		}
		for _, e := range inv.Entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				out.Entries = append(out.Entries, e)
			}
		}
	}
	sortEntries(out.Entries)
	return out
}

// Entries wraps a list of entries as an inventory.
func Entries(entries []Entry) *Inventory {
	out := &Inventory{Entries: slices.Clone(entries)}
	sortEntries(out.Entries)
	return out
}

func sortEntries(entries []Entry) {
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
}

// observed is what tells, from a list, whether anyone but a status writer
// changed an object since warren applied it: a hash of its managedFields
// entries for the main resource (each write records its manager and time
// there; status updates are kept under their subresource and left out, so
// a controller reporting status does not count as drift). Objects without
// managed fields fall back to their resourceVersion.
func observed(m metav1.Object) string {
	h := sha256.New()
	n := 0
	for _, mf := range m.GetManagedFields() {
		if mf.Subresource != "" {
			continue
		}
		n++
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", mf.Manager, mf.Operation, mf.APIVersion)
		if mf.Time != nil {
			fmt.Fprintf(h, "%d", mf.Time.Unix())
		}
		h.Write([]byte{0})
		if mf.FieldsV1 != nil {
			h.Write(mf.FieldsV1.Raw)
		}
		h.Write([]byte{0})
	}
	if n == 0 {
		return "rv" + m.GetResourceVersion()
	}
	return "mf" + hex.EncodeToString(h.Sum(nil)[:8])
}

const waitInterval = 500 * time.Millisecond

func timeUntil(t time.Time) time.Duration { return time.Until(t) }
