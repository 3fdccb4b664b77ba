// Package apply writes a Fleet's rendered objects to the host with
// server-side apply under the one field manager "warren", keeps the Fleet's
// inventory of what it owns, sets back objects changed by hand, and prunes
// objects no longer rendered.
//
// It never adopts, writes to or deletes an object warren did not create for
// the same Fleet (one carrying Flux's or Argo CD's tracking marks above all):
// such an object is reported as a Conflict and left as it is. It never
// re-applies an object that is unchanged on both sides: drift is found by
// listing labelled objects, so a no-op reconcile makes no write request.
package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the one server-side apply field manager warren uses. It
// never changes: changing it would orphan the fields every object holds.
const FieldManager = "warren"

// Labels warren puts on every object it applies.
const (
	// FleetNameLabel and FleetNamespaceLabel name the Fleet that owns an
	// object; both must match for warren to touch it.
	FleetNameLabel      = "fleet.warren.dev/name"
	FleetNamespaceLabel = "fleet.warren.dev/namespace"
	// ManagedByLabel is set to ManagedByValue.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "warren"
	// ClusterLabel names the virtual cluster an object belongs to (set by
	// rendering); the inventory records it to select a cluster's objects.
	ClusterLabel = "warren.dev/cluster"
)

// Owner is the Fleet whose objects an Applier manages.
type Owner struct {
	Namespace string
	Name      string
}

func (o Owner) String() string { return o.Namespace + "/" + o.Name }

// Labels are the labels that mark an object as this Fleet's.
func (o Owner) Labels() map[string]string {
	return map[string]string{FleetNameLabel: o.Name, FleetNamespaceLabel: o.Namespace}
}

// Options tune an Applier.
type Options struct {
	// Concurrency of ssa's dry-run drift checks; default 4.
	Concurrency int
	// WaitTimeout bounds the wait for namespaces and CRDs to be ready
	// before the objects that need them; default 60s.
	WaitTimeout time.Duration
}

// Applier applies, checks and prunes the objects of one Fleet.
type Applier struct {
	client  client.Client
	owner   Owner
	manager *ssa.ResourceManager
	opts    Options
}

// New returns an Applier for owner. c must read from the API server, not
// from an informer cache, and must carry a RESTMapper that learns new CRDs.
func New(c client.Client, owner Owner, opts Options) (*Applier, error) {
	if owner.Name == "" || owner.Namespace == "" {
		return nil, errors.New("apply: owner Fleet needs a name and a namespace")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 60 * time.Second
	}
	poller := polling.NewStatusPoller(c, c.RESTMapper(), polling.Options{})
	m := ssa.NewResourceManager(c, poller, ssa.Owner{Field: FieldManager, Group: "fleet.warren.dev"})
	m.SetConcurrency(opts.Concurrency)
	return &Applier{client: c, owner: owner, manager: m, opts: opts}, nil
}

// Action is what Apply did with one object.
type Action string

const (
	Created    Action = "created"
	Configured Action = "configured" // it had changed in Git or on the host
	Unchanged  Action = "unchanged"
)

// Change is one object Apply wrote or left alone.
type Change struct {
	Object ObjectRef
	Action Action
}

// Conflict is an object Apply was asked to write but did not, because it
// exists and is not this Fleet's.
type Conflict struct {
	Object ObjectRef
	// Reason says who holds it, e.g. "managed by Flux Kustomization
	// apps/infra" or "owned by Fleet team-b/fleet".
	Reason string
}

func (c Conflict) String() string { return c.Object.String() + ": " + c.Reason }

// Result is the outcome of one Apply.
type Result struct {
	// Inventory is what the Fleet owns after this apply: every object it
	// applied or found unchanged, plus, after an error, every object of the
	// previous inventory (nothing is forgotten, so nothing is orphaned).
	Inventory *Inventory
	Changes   []Change
	Conflicts []Conflict
	// Untracked are objects that carry this Fleet's labels, are of a kind
	// being applied, and are neither rendered nor in the previous
	// inventory: left over by an apply whose inventory was never recorded
	// (the reconciler stopped mid-apply). Prune them with the stale ones.
	Untracked []Entry
}

// Written counts the objects created or configured.
func (r *Result) Written() int {
	n := 0
	for _, c := range r.Changes {
		if c.Action != Unchanged {
			n++
		}
	}
	return n
}

// desiredObject is one object to apply with its bookkeeping.
type desiredObject struct {
	obj    *unstructured.Unstructured
	ref    ObjectRef
	id     string
	digest string
}

// Apply makes the host hold objects. previous is the inventory of the last
// Apply (nil for none). An object unchanged in Git whose live copy has not
// been written since warren applied it costs nothing but its share of one
// list per kind; an object changed on either side, or missing, is applied
// with ssa (namespaces and CRDs first); an object that exists but is not
// this Fleet's is a Conflict and is not written.
func (a *Applier) Apply(ctx context.Context, objects []*unstructured.Unstructured, previous *Inventory) (*Result, error) {
	desired, err := a.prepare(objects)
	if err != nil {
		return nil, err
	}
	prev := map[string]Entry{}
	if previous != nil {
		for _, e := range previous.Entries {
			prev[e.ID] = e
		}
	}

	live, err := a.listOwned(ctx, kindsOf(desired))
	if err != nil {
		return nil, err
	}

	res := &Result{}
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.id] = true
	}
	for id, l := range live {
		if _, known := prev[id]; !known && !wanted[id] {
			res.Untracked = append(res.Untracked, Entry{ID: id, Version: l.version, Cluster: l.GetLabels()[ClusterLabel], Observed: observed(l)})
		}
	}
	sortEntries(res.Untracked)
	// Nothing is written into a namespace that is someone else's: a
	// Namespace among the objects that is a conflict takes everything
	// rendered into it along.
	foreignNamespaces := map[string]string{}
	for _, d := range desired {
		if d.ref.Group != "" || d.ref.Kind != "Namespace" {
			continue
		}
		if _, ours := live[d.id]; ours {
			continue
		}
		conflict, err := a.foreign(ctx, d)
		if err != nil {
			return nil, err
		}
		if conflict != nil {
			foreignNamespaces[d.ref.Name] = conflict.Reason
			res.Conflicts = append(res.Conflicts, *conflict)
		}
	}
	var (
		toApply []desiredObject
		unknown []desiredObject
		kept    []Entry
	)
	for _, d := range desired {
		if d.ref.Group == "" && d.ref.Kind == "Namespace" {
			if _, foreign := foreignNamespaces[d.ref.Name]; foreign {
				continue // reported above
			}
		}
		if _, foreign := foreignNamespaces[d.ref.Namespace]; foreign {
			res.Conflicts = append(res.Conflicts, Conflict{Object: d.ref, Reason: "in namespace " + d.ref.Namespace + ", which is not this Fleet's"})
			continue
		}
		l, ours := live[d.id]
		if ours {
			if e, ok := prev[d.id]; ok && e.Digest == d.digest && e.Observed == observed(l) && e.Version == d.ref.Version {
				kept = append(kept, e)
				res.Changes = append(res.Changes, Change{Object: d.ref, Action: Unchanged})
				continue
			}
			toApply = append(toApply, d)
			continue
		}
		unknown = append(unknown, d)
	}
	// Objects not listed as this Fleet's are new or someone else's: look
	// them up, several at once (a cold reconcile has thousands), except
	// where one list of namespaces says they cannot exist.
	namespaces, err := a.existingNamespaces(ctx, unknown)
	if err != nil {
		return nil, err
	}
	hasCRD := false
	for _, d := range desired {
		hasCRD = hasCRD || (d.ref.Group == "apiextensions.k8s.io" && d.ref.Kind == "CustomResourceDefinition")
	}
	fresh := map[string]bool{} // IDs of objects known not to exist
	found := make([]*Conflict, len(unknown))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Concurrency)
	for i, d := range unknown {
		if namespaces != nil && !namespaces[namespaceOf(d.ref)] {
			// A new namespace, or an object in one: nothing to find.
			if !hasCRD {
				fresh[d.id] = true
			}
			continue
		}
		g.Go(func() error {
			c, err := a.foreign(gctx, d)
			found[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, d := range unknown {
		if found[i] != nil {
			res.Conflicts = append(res.Conflicts, *found[i])
			continue
		}
		toApply = append(toApply, d)
	}

	var applyErr error
	var created []desiredObject
	objs := make([]*unstructured.Unstructured, 0, len(toApply))
	for _, d := range toApply {
		if fresh[d.id] {
			created = append(created, d)
			continue
		}
		objs = append(objs, d.obj.DeepCopy())
	}
	if len(objs) > 0 {
		opts := ssa.DefaultApplyOptions()
		opts.WaitTimeout = a.opts.WaitTimeout
		cs, err := a.applyStaged(ctx, objs, opts)
		if err != nil {
			applyErr = fmt.Errorf("apply: %w", err)
		}
		if cs != nil {
			actions := map[string]ssa.Action{}
			for _, e := range cs.Entries {
				actions[e.ObjMetadata.String()] = e.Action
			}
			for _, d := range toApply {
				action, ok := actions[d.id]
				if !ok {
					continue
				}
				switch action {
				case ssa.CreatedAction:
					res.Changes = append(res.Changes, Change{Object: d.ref, Action: Created})
				case ssa.ConfiguredAction:
					res.Changes = append(res.Changes, Change{Object: d.ref, Action: Configured})
				default:
					res.Changes = append(res.Changes, Change{Object: d.ref, Action: Unchanged})
				}
			}
		}
	}

	if len(created) > 0 {
		done, err := a.create(ctx, created)
		applyErr = errors.Join(applyErr, err)
		for _, d := range done {
			res.Changes = append(res.Changes, Change{Object: d.ref, Action: Created})
		}
	}

	// Record what each applied object looks like now, so the next Apply can
	// tell a later hand edit from warren's own write.
	after, err := a.listOwned(ctx, kindsOf(toApply))
	if err != nil && applyErr == nil {
		applyErr = err
	}
	entries := kept
	for _, d := range toApply {
		l, ok := after[d.id]
		if !ok {
			continue
		}
		e := Entry{ID: d.id, Version: d.ref.Version, Cluster: d.obj.GetLabels()[ClusterLabel], Digest: d.digest, Observed: observed(l)}
		if applyErr != nil {
			e.Digest = "" // not known to be applied: check it again next time
		}
		entries = append(entries, e)
	}
	inv := Entries(entries)
	if applyErr != nil {
		inv = Merge(inv, previous)
	}
	res.Inventory = inv
	return res, applyErr
}

// prepare labels copies of the objects as this Fleet's and digests them.
func (a *Applier) prepare(objects []*unstructured.Unstructured) ([]desiredObject, error) {
	out := make([]desiredObject, 0, len(objects))
	seen := map[string]bool{}
	for _, o := range objects {
		obj := o.DeepCopy()
		if obj.GetName() == "" || obj.GetKind() == "" || obj.GetAPIVersion() == "" {
			return nil, fmt.Errorf("apply: an object lacks apiVersion, kind or metadata.name: %s", ssautils.FmtUnstructured(obj))
		}
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range a.owner.Labels() {
			labels[k] = v
		}
		labels[ManagedByLabel] = ManagedByValue
		obj.SetLabels(labels)
		ref := refOf(obj)
		id := ref.id()
		if seen[id] {
			return nil, fmt.Errorf("apply: %s is rendered twice", ref)
		}
		seen[id] = true
		dg, err := digest(obj)
		if err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
		out = append(out, desiredObject{obj: obj, ref: ref, id: id, digest: dg})
	}
	return out, nil
}

func kindsOf(ds []desiredObject) []schema.GroupVersionKind {
	var kinds []schema.GroupVersionKind
	for _, d := range ds {
		gvk := d.ref.GroupVersionKind()
		if !slices.Contains(kinds, gvk) {
			kinds = append(kinds, gvk)
		}
	}
	return kinds
}

// liveObject is the metadata of a listed object and the API version it was
// listed at.
type liveObject struct {
	metav1.Object
	version string
}

// listOwned lists, per kind, the metadata of every object carrying this
// Fleet's labels, keyed by inventory ID. A kind the API server does not
// know yet (a CRD about to be applied) has no objects.
func (a *Applier) listOwned(ctx context.Context, kinds []schema.GroupVersionKind) (map[string]liveObject, error) {
	out := map[string]liveObject{}
	for _, gvk := range kinds {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		err := a.client.List(ctx, list, client.MatchingLabels(a.owner.Labels()))
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apply: list %s owned by Fleet %s: %w", gvk.Kind, a.owner, err)
		}
		for i := range list.Items {
			item := &list.Items[i]
			ref := ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: item.Namespace, Name: item.Name}
			out[ref.id()] = liveObject{Object: item, version: gvk.Version}
		}
	}
	return out, nil
}

// applyStaged applies objects with ssa, staged (namespaces and CRDs first).
// ssa writes one object at a time; objects in different namespaces do not
// wait for each other, so they are applied in up to Concurrency groups at
// once, each group holding whole namespaces (the Namespace with everything
// in it) and staged on its own. An apply holding a CRD goes as one group, so
// its custom objects follow it.
func (a *Applier) applyStaged(ctx context.Context, objs []*unstructured.Unstructured, opts ssa.ApplyOptions) (*ssa.ChangeSet, error) {
	groups := byNamespace(objs, a.opts.Concurrency)
	if len(groups) <= 1 {
		return a.manager.ApplyAllStaged(ctx, objs, opts)
	}
	sets := make([]*ssa.ChangeSet, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, group := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sets[i], errs[i] = a.manager.ApplyAllStaged(ctx, group, opts)
		}()
	}
	wg.Wait()
	cs := ssa.NewChangeSet()
	for _, s := range sets {
		if s != nil {
			cs.Append(s.Entries)
		}
	}
	return cs, errors.Join(errs...)
}

// byNamespace splits objects into at most n groups, keeping each namespace
// (its Namespace object and its contents) in one group; cluster-scoped
// objects other than namespaces go with the first group. Any CRD keeps
// everything in one group.
func byNamespace(objs []*unstructured.Unstructured, n int) [][]*unstructured.Unstructured {
	byKey := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition" {
			return [][]*unstructured.Unstructured{objs}
		}
		key := o.GetNamespace()
		if gvk.Group == "" && gvk.Kind == "Namespace" {
			key = o.GetName()
		}
		byKey[key] = append(byKey[key], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys) // "" (cluster-scoped) first
	if n > len(keys) {
		n = len(keys)
	}
	groups := make([][]*unstructured.Unstructured, n)
	for i, k := range keys {
		groups[i%n] = append(groups[i%n], byKey[k]...)
	}
	return groups
}

// namespaceOf is the namespace an object is in, or is, or "" for other
// cluster-scoped objects.
func namespaceOf(ref ObjectRef) string {
	if ref.Group == "" && ref.Kind == "Namespace" {
		return ref.Name
	}
	return ref.Namespace
}

// existingNamespaces lists the host's namespaces when some of objects are
// namespaces or in one; nil when none are. The set holds "" so that other
// cluster-scoped objects are always looked up.
func (a *Applier) existingNamespaces(ctx context.Context, objects []desiredObject) (map[string]bool, error) {
	needed := false
	for _, d := range objects {
		if namespaceOf(d.ref) != "" {
			needed = true
			break
		}
	}
	if !needed {
		return nil, nil
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "NamespaceList"})
	if err := a.client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("apply: list namespaces: %w", err)
	}
	out := map[string]bool{"": true}
	for _, ns := range list.Items {
		out[ns.Name] = true
	}
	return out, nil
}

// create applies objects known not to exist yet (each is, or is in, a
// namespace the host did not have), namespaces first, several at once. It
// skips ssa's look-up and dry run, two requests an object that tell nothing
// about an object that does not exist. Ownership is not forced: should one
// appear meanwhile with someone else's fields, the apply fails rather than
// take them.
func (a *Applier) create(ctx context.Context, objs []desiredObject) ([]desiredObject, error) {
	var namespaces, rest []desiredObject
	for _, d := range objs {
		if d.ref.Group == "" && d.ref.Kind == "Namespace" {
			namespaces = append(namespaces, d)
		} else {
			rest = append(rest, d)
		}
	}
	var (
		mu   sync.Mutex
		done []desiredObject
	)
	for _, batch := range [][]desiredObject{namespaces, rest} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(4 * a.opts.Concurrency)
		for _, d := range batch {
			g.Go(func() error {
				if err := a.client.Patch(gctx, d.obj.DeepCopy(), client.Apply, client.FieldOwner(FieldManager)); err != nil {
					return fmt.Errorf("apply: create %s: %w", d.ref, err)
				}
				mu.Lock()
				done = append(done, d)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return done, err
		}
	}
	return done, nil
}
