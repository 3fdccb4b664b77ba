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
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FieldManager is the one server-side apply field manager warren uses. It
// never changes: changing it would orphan the fields every object holds.
const FieldManager = "warren"

// Owner is the Fleet whose objects an Applier manages.
type Owner struct {
	Namespace string
	Name      string
}

func (o Owner) String() string { return o.Namespace + "/" + o.Name }

// Labels are the labels that mark an object as this Fleet's.
func (o Owner) Labels() map[string]string {
	return map[string]string{v1alpha1.FleetNameLabel: o.Name, v1alpha1.FleetNamespaceLabel: o.Namespace}
}

// Options tune an Applier.
type Options struct {
	// Concurrency is how many clusters' batches apply side by side, how
	// many dry runs each batch runs at once, and how many ownership
	// lookups run at once; default 4.
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
	// Reason says who holds it, e.g. "managed by Flux (name=apps,
	// namespace=flux-system)" or "owned by Fleet team-b/fleet".
	Reason string
}

func (c Conflict) String() string { return c.Object.String() + ": " + c.Reason }

// Result is the outcome of one Apply. Apply returns it even with an error
// (unless the error came before anything was written).
type Result struct {
	// Inventory is what the Fleet owns after this apply: every object it
	// applied or found unchanged, plus the previous entries of every
	// cluster that failed (all previous entries if the final list failed),
	// so nothing is forgotten and nothing is pruned because of a failure.
	Inventory *Inventory
	Changes   []Change
	Conflicts []Conflict
	// Failures are the clusters whose objects could not all be applied.
	// Their previous inventory entries are kept, so nothing of theirs is
	// pruned because of the failure.
	Failures []ClusterFailure
	// Unrendered are the clusters ApplyObjects was given by digests alone
	// that had to be rendered again and could not be (their Rerender
	// failed, or said they are not warren's: a *ConflictError). Nothing of
	// theirs was written, and their previous entries are kept.
	Unrendered []ClusterFailure
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

// desiredObject is one object to apply with its bookkeeping. It points to
// the Object it was given: the lists Apply sorts objects into hold a few
// words per object, not copies (75,000 of them at 5,000 clusters).
type desiredObject struct {
	*Object
	// absent: a look-up in this Apply found no such object, so it is
	// created with one plain server-side apply instead of ssa's dry run
	// and re-read (the bulk of a cold start).
	absent bool
}

// Apply makes the host hold objects. previous is the inventory of the last
// Apply (nil for none). An object unchanged in Git whose live copy has not
// been written since warren applied it costs nothing but its share of one
// list per kind; an object changed on either side, or missing, is applied
// with ssa (namespaces and CRDs first); an object that exists but is not
// this Fleet's is a Conflict and is not written.
func (a *Applier) Apply(ctx context.Context, objects []*unstructured.Unstructured, previous *Inventory) (*Result, error) {
	prepared, err := Prepare(a.owner, objects)
	if err != nil {
		return nil, err
	}
	return a.ApplyObjects(ctx, prepared, nil, previous)
}

// Rerender renders one cluster's objects again, prepared. ApplyObjects calls
// it for a cluster it was given by digests alone (Object.Known) when one of
// its objects is not on the host as warren last applied it. A
// *ConflictError says the cluster is not warren's to write.
type Rerender func(ctx context.Context, cluster string) ([]Object, error)

// ApplyObjects is Apply for objects Prepare made. A cluster may be given by
// its objects' digests alone (Known): when every one of them is on the host
// as warren last applied it, it is kept as it is; otherwise rerender gives
// its objects, which are applied in the same call. A cluster that cannot be
// rendered again is in Result.Unrendered and keeps its previous entries.
func (a *Applier) ApplyObjects(ctx context.Context, objects []Object, rerender Rerender, previous *Inventory) (*Result, error) {
	desired, err := distinct(objects)
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
	res := &Result{Untracked: untracked(prev, desired, live)}
	desired, held, err := a.renderDrifted(ctx, res, desired, prev, live, rerender)
	if err != nil {
		return nil, err
	}
	toApply, kept, err := a.sortOut(ctx, res, desired, prev, live)
	if err != nil {
		return nil, err
	}

	actions, failures := a.applyObjects(ctx, toApply)
	res.Failures = failures
	for _, f := range failures {
		held[f.Cluster] = true
	}
	res.Changes = append(res.Changes, appliedChanges(toApply, actions)...)

	// Record what each applied object looks like now, so the next Apply can
	// tell a later hand edit from warren's own write.
	after, listErr := a.listOwned(ctx, kindsOf(toApply))
	res.Inventory = inventoryAfter(previous, kept, toApply, after, held, listErr)

	var errs []error
	for _, f := range failures {
		errs = append(errs, f)
	}
	if listErr != nil {
		errs = append(errs, listErr)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("apply: %w", errors.Join(errs...))
	}
	return res, nil
}

// distinct are objects to apply, refusing an object given twice.
func distinct(objects []Object) ([]desiredObject, error) {
	out := make([]desiredObject, len(objects))
	for i := range objects {
		out[i] = desiredObject{Object: &objects[i]}
	}
	return out, onceEach(out)
}

// onceEach refuses an object given twice.
func onceEach(ds []desiredObject) error {
	seen := make(map[string]bool, len(ds))
	for _, d := range ds {
		if seen[d.id] {
			return fmt.Errorf("apply: %s is rendered twice", d.ref)
		}
		seen[d.id] = true
	}
	return nil
}

// untracked are the objects warren owns that neither the inventory nor
// this rendering knows (left by a crash between apply and status).
func untracked(prev map[string]Entry, desired []desiredObject, live map[string]liveObject) []Entry {
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.id] = true
	}
	var out []Entry
	for id, l := range live {
		if _, known := prev[id]; !known && !wanted[id] {
			out = append(out, Entry{ID: id, Version: l.version, Cluster: l.cluster, Observed: l.observed})
		}
	}
	sortEntries(out)
	return out
}

// sortOut decides, for each desired object, whether it is applied, kept
// as it is (unchanged since warren applied it), or refused as a conflict
// (recorded in res): objects in namespaces warren may not write, and
// objects of names some other owner holds.
func (a *Applier) sortOut(ctx context.Context, res *Result, desired []desiredObject, prev map[string]Entry, live map[string]liveObject) (toApply []desiredObject, kept []Entry, err error) {
	screen, err := a.screenNamespaces(ctx, desired, live)
	if err != nil {
		return nil, nil, err
	}
	res.Conflicts = append(res.Conflicts, screen.conflicts...)
	var unclaimed []desiredObject
	for _, d := range desired {
		if blocked, conflict := screen.blocks(d); blocked {
			if conflict != nil {
				res.Conflicts = append(res.Conflicts, *conflict)
			}
			continue
		}
		l, ours := live[d.id]
		switch {
		case !ours && screen.checked[d.id]:
			toApply = append(toApply, d) // looked up above: free
		case !ours:
			unclaimed = append(unclaimed, d)
		case isUnchanged(prev, d, l):
			kept = append(kept, prev[d.id])
			res.Changes = append(res.Changes, Change{Object: d.ref, Action: Unchanged})
		default:
			toApply = append(toApply, d)
		}
	}
	conflicts, err := a.checkUnclaimed(ctx, unclaimed)
	if err != nil {
		return nil, nil, err
	}
	for i, d := range unclaimed {
		if conflicts[i] != nil {
			res.Conflicts = append(res.Conflicts, *conflicts[i])
			continue
		}
		toApply = append(toApply, d)
	}
	return toApply, kept, nil
}

// appliedChanges are what server-side apply did to each object.
func appliedChanges(applied []desiredObject, actions map[string]ssa.Action) []Change {
	var out []Change
	for _, d := range applied {
		switch actions[d.id] {
		case ssa.CreatedAction:
			out = append(out, Change{Object: d.ref, Action: Created})
		case ssa.ConfiguredAction:
			out = append(out, Change{Object: d.ref, Action: Configured})
		case ssa.UnchangedAction:
			out = append(out, Change{Object: d.ref, Action: Unchanged})
		}
	}
	return out
}

// inventoryAfter is the inventory once applied is written: what was kept,
// what was applied as it is now (after), and whatever a failed cluster
// owned before (so a prune after a failed apply deletes none of it; all of
// it when listing after failed).
func inventoryAfter(previous *Inventory, kept []Entry, applied []desiredObject, after map[string]liveObject, failed map[string]bool, listErr error) *Inventory {
	entries := kept
	for _, d := range applied {
		l, ok := after[d.id]
		if !ok {
			continue
		}
		cluster := d.cluster
		e := Entry{ID: d.id, Version: d.ref.Version, Cluster: cluster, Digest: d.digest, Observed: l.observed}
		if failed[cluster] {
			e.Digest = "" // not known to be applied in full: check it again next time
		}
		entries = append(entries, e)
	}
	var keep []Entry
	if previous != nil {
		for _, e := range previous.Entries {
			if listErr != nil || failed[e.Cluster] {
				keep = append(keep, e)
			}
		}
	}
	return Merge(Entries(entries), Entries(keep))
}

func isNamespace(r ObjectRef) bool { return r.Group == "" && r.Kind == "Namespace" }

// isUnchanged reports whether a listed object is exactly as warren last
// applied it and the rendering has not changed since.
func isUnchanged(prev map[string]Entry, d desiredObject, live liveObject) bool {
	e, ok := prev[d.id]
	return ok && e.Digest == d.digest && e.Version == d.ref.Version && e.Observed == live.observed
}

// ClusterFailure is a virtual cluster whose objects could not all be
// applied; the other clusters of the Fleet are not held back by it.
type ClusterFailure struct {
	// Cluster is the warren.dev/cluster label of the objects, empty for
	// objects without one.
	Cluster string
	Err     error
}

func (f ClusterFailure) Error() string {
	if f.Cluster == "" {
		return f.Err.Error()
	}
	return "cluster " + f.Cluster + ": " + f.Err.Error()
}

func (f ClusterFailure) Unwrap() error { return f.Err }

// listInsteadOfGet is how many objects of one kind make checkUnclaimed
// list the kind (metadata only, in pages) rather than get them one by one.
const listInsteadOfGet = 20

// checkUnclaimed looks up the objects to be applied that are not in this
// Fleet's lists; conflicts[i] is set for each one that exists and is not
// this Fleet's. A kind with few such objects is looked up object by object,
// a few at a time; a kind with many (a cold start) is listed once.
// It marks the objects it found absent.
func (a *Applier) checkUnclaimed(ctx context.Context, ds []desiredObject) ([]*Conflict, error) {
	conflicts := make([]*Conflict, len(ds))
	byKind := map[schema.GroupVersionKind][]int{}
	for i, d := range ds {
		gvk := d.ref.GroupVersionKind()
		byKind[gvk] = append(byKind[gvk], i)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Concurrency)
	for gvk, idx := range byKind {
		if len(idx) < listInsteadOfGet {
			for _, i := range idx {
				g.Go(func() error {
					c, absent, err := a.lookUp(gctx, ds[i])
					conflicts[i], ds[i].absent = c, absent
					return err
				})
			}
			continue
		}
		g.Go(func() error {
			wanted := make(map[string]bool, len(idx))
			for _, i := range idx {
				wanted[ds[i].id] = true
			}
			existing, err := a.ownershipOf(gctx, gvk, wanted)
			if err != nil {
				return err
			}
			for _, i := range idx {
				reason, ok := existing[ds[i].id]
				if !ok {
					ds[i].absent = true
					continue
				}
				if reason != "" {
					conflicts[i] = &Conflict{Object: ds[i].ref, Reason: reason}
				}
			}
			return nil
		})
	}
	return conflicts, g.Wait()
}

// ownershipOf lists the metadata of every object of one kind, page by page,
// and says of each of wanted (IDs) that exists whether it is this Fleet's:
// "" when it is, else why not. An ID not in the answer does not exist.
func (a *Applier) ownershipOf(ctx context.Context, gvk schema.GroupVersionKind, wanted map[string]bool) (map[string]string, error) {
	out := map[string]string{}
	err := a.listPages(ctx, gvk, nil, func(item *metav1.PartialObjectMetadata, ref ObjectRef) {
		if id := ref.id(); wanted[id] {
			out[id] = a.ownershipProblem(item)
		}
	})
	if meta.IsNoMatchError(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apply: list %s: %w", gvk.Kind, err)
	}
	return out, nil
}

// applyObjects applies ds with ssa: first the namespaces, CRDs and other
// cluster-wide definitions of all clusters (waiting until they are ready),
// then the objects that belong to no cluster, then the clusters' objects in
// a few concurrent batches, as ssa writes one object at a time within a
// batch. A batch that fails is tried again
// cluster by cluster, so one broken cluster names itself and does not hold
// back the rest. It returns the action for each object ID it applied.
func (a *Applier) applyObjects(ctx context.Context, ds []desiredObject) (map[string]ssa.Action, []ClusterFailure) {
	w := &applyRun{a: a, ctx: ctx, actions: map[string]ssa.Action{}}
	if len(ds) == 0 {
		return w.actions, nil
	}
	// Namespaces, CRDs and other cluster-wide definitions of every cluster
	// go first, together, so nothing later waits for a definition that is
	// in another batch.
	var defs, rest []desiredObject
	for _, d := range ds {
		if d.definition {
			defs = append(defs, d)
		} else {
			rest = append(rest, d)
		}
	}
	// Definitions without a cluster (a shared CRD) first, then the
	// clusters' own (their namespaces), each batch waiting for its own.
	defGroups, defClusters := groupByCluster(defs)
	if len(defGroups[""]) > 0 {
		w.runBatch([]string{""}, defGroups)
	}
	w.concurrently(slices.DeleteFunc(defClusters, func(c string) bool { return c == "" }), defGroups)

	failed := map[string]bool{}
	for _, f := range w.failures {
		failed[f.Cluster] = true
	}
	// A CRD reports Established before the API server's discovery lists its
	// kinds; an object of a new kind waits until it is listed.
	for _, f := range a.waitForNewKinds(ctx, defs, rest, failed) {
		failed[f.Cluster] = true
		w.failures = append(w.failures, f)
	}
	groups, all := groupByCluster(rest)
	if len(groups[""]) > 0 && !failed[""] {
		w.runBatch([]string{""}, groups) // objects of no cluster: before the clusters
	}
	w.concurrently(slices.DeleteFunc(all, func(c string) bool { return c == "" || failed[c] }), groups)
	slices.SortFunc(w.failures, func(x, y ClusterFailure) int { return strings.Compare(x.Cluster, y.Cluster) })
	return w.actions, w.failures
}

// applyRun is one applyObjects: what it did to each object, and which
// clusters failed, written by batches running side by side.
type applyRun struct {
	a   *Applier
	ctx context.Context

	mu       sync.Mutex
	actions  map[string]ssa.Action
	failures []ClusterFailure
}

// apply writes one group of objects: absent ones created without force,
// the rest applied in stages by ssa.
func (w *applyRun) apply(group []desiredObject) error {
	objs := make([]*unstructured.Unstructured, 0, len(group))
	for _, d := range group {
		if d.absent {
			// Not forced: should someone create it meanwhile, their
			// fields conflict and nothing of theirs is overwritten.
			obj, err := d.decode()
			if err != nil {
				return err
			}
			if err := w.a.client.Patch(w.ctx, obj, client.Apply, client.FieldOwner(FieldManager)); err != nil {
				return fmt.Errorf("apply: create %s: %w", d.ref, err)
			}
			w.record(d.id, ssa.CreatedAction)
			continue
		}
		obj, err := d.decode()
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil
	}
	cs, err := w.applyStaged(objs)
	if cs != nil {
		for _, e := range cs.Entries {
			w.record(e.ObjMetadata.String(), e.Action)
		}
	}
	return err
}

// applyStaged applies objs as ssa's ApplyAllStaged does (cluster-wide
// definitions, then class definitions, then the rest), but waits only for
// the definitions that can be unready: CRDs until established, and
// namespaces that already existed, which may be terminating. A namespace
// this call created is active at once, so a cold start of thousands of
// clusters does not poll thousands of namespaces before it goes on.
func (w *applyRun) applyStaged(objs []*unstructured.Unstructured) (*ssa.ChangeSet, error) {
	opts := ssa.DefaultApplyOptions()
	opts.WaitTimeout = w.a.opts.WaitTimeout
	opts.WaitInterval = waitInterval
	var defs, classes, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case ssautils.IsClusterDefinition(o):
			defs = append(defs, o)
		case ssautils.IsClassDefinition(o):
			classes = append(classes, o)
		default:
			rest = append(rest, o)
		}
	}
	all := ssa.NewChangeSet()
	for i, stage := range [][]*unstructured.Unstructured{defs, classes, rest} {
		if len(stage) == 0 {
			continue
		}
		cs, err := w.a.manager.ApplyAll(w.ctx, stage, opts)
		if cs != nil {
			all.Append(cs.Entries)
		}
		if err != nil {
			return all, err
		}
		if i > 0 {
			continue
		}
		wait := mayBeUnready(cs)
		if err := w.a.manager.WaitForSetWithContext(w.ctx, wait, ssa.WaitOptions{Interval: opts.WaitInterval, Timeout: opts.WaitTimeout}); err != nil {
			return all, err
		}
	}
	return all, nil
}

// mayBeUnready is what of an applied definition stage is worth waiting
// for: CRDs, and namespaces that were there before (one being deleted is
// not ready for new objects).
func mayBeUnready(cs *ssa.ChangeSet) object.ObjMetadataSet {
	var set object.ObjMetadataSet
	for _, e := range cs.Entries {
		k := e.ObjMetadata.GroupKind
		switch {
		case k.Group == "apiextensions.k8s.io" && k.Kind == "CustomResourceDefinition":
		case k.Group == "" && k.Kind == "Namespace" && e.Action != ssa.CreatedAction:
		default:
			continue
		}
		set = append(set, e.ObjMetadata)
	}
	return set
}

func (w *applyRun) record(id string, action ssa.Action) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.actions[id] = action
}

// runBatch applies the clusters of one batch together, then one by one if
// that fails.
func (w *applyRun) runBatch(clusters []string, groups map[string][]desiredObject) {
	var all []desiredObject
	for _, c := range clusters {
		all = append(all, groups[c]...)
	}
	err := w.apply(all)
	if err == nil {
		return
	}
	var fs []ClusterFailure
	if len(clusters) == 1 || w.ctx.Err() != nil {
		for _, c := range clusters {
			fs = append(fs, ClusterFailure{Cluster: c, Err: err})
		}
	} else {
		for _, c := range clusters {
			if err := w.apply(groups[c]); err != nil {
				fs = append(fs, ClusterFailure{Cluster: c, Err: err})
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failures = append(w.failures, fs...)
}

// concurrently spreads clusters over a few batches run side by side.
func (w *applyRun) concurrently(clusters []string, groups map[string][]desiredObject) {
	if len(clusters) == 0 {
		return
	}
	batches := make([][]string, min(w.a.opts.Concurrency, len(clusters)))
	for i, c := range clusters {
		batches[i%len(batches)] = append(batches[i%len(batches)], c)
	}
	var wg sync.WaitGroup
	for _, batch := range batches {
		wg.Go(func() { w.runBatch(batch, groups) })
	}
	wg.Wait()
}

// groupByCluster groups objects by their cluster label, and lists the
// clusters in the order they first appear.
func groupByCluster(ds []desiredObject) (map[string][]desiredObject, []string) {
	groups := map[string][]desiredObject{}
	var clusters []string
	for _, d := range ds {
		c := d.cluster
		if _, ok := groups[c]; !ok {
			clusters = append(clusters, c)
		}
		groups[c] = append(groups[c], d)
	}
	return groups, clusters
}

// waitForNewKinds waits, for each object in rest whose kind a CRD in defs
// defines, until discovery lists that kind, at most WaitTimeout. Clusters
// whose definitions failed are not waited for. It returns a failure for each
// cluster with a kind that was still not listed.
func (a *Applier) waitForNewKinds(ctx context.Context, defs, rest []desiredObject, failed map[string]bool) []ClusterFailure {
	defined := map[schema.GroupKind]bool{}
	for _, d := range defs {
		if !d.defines.Empty() {
			defined[d.defines] = true
		}
	}
	if len(defined) == 0 {
		return nil
	}
	clustersOf := map[schema.GroupVersionKind][]string{}
	seen := map[schema.GroupVersionKind]map[string]bool{}
	for _, d := range rest {
		gvk := d.ref.GroupVersionKind()
		c := d.cluster
		if !defined[gvk.GroupKind()] || failed[c] || seen[gvk][c] {
			continue
		}
		if seen[gvk] == nil {
			seen[gvk] = map[string]bool{}
		}
		seen[gvk][c] = true
		clustersOf[gvk] = append(clustersOf[gvk], c)
	}
	var out []ClusterFailure
	mapper := a.client.RESTMapper()
	for gvk, clusters := range clustersOf {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, a.opts.WaitTimeout, true, func(context.Context) (bool, error) {
			_, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if meta.IsNoMatchError(err) {
				return false, nil
			}
			return err == nil, err
		})
		if err != nil {
			for _, c := range clusters {
				out = append(out, ClusterFailure{Cluster: c, Err: fmt.Errorf("apply: %s is defined but not served by the API server: %w", gvk, err)})
			}
		}
	}
	return out
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

// liveObject is what Apply reads of a listed object: the API version it
// was listed at, its cluster label, and what observed makes of its
// managedFields (which are not kept).
type liveObject struct {
	version  string
	cluster  string
	observed string
}

// listOwned lists, per kind, the metadata of every object carrying this
// Fleet's labels, keyed by inventory ID, page by page, Concurrency kinds at
// a time. A kind the API server does not know yet (a CRD about to be
// applied) has no objects.
func (a *Applier) listOwned(ctx context.Context, kinds []schema.GroupVersionKind) (map[string]liveObject, error) {
	out := map[string]liveObject{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Concurrency)
	for _, gvk := range kinds {
		g.Go(func() error {
			err := a.listPages(gctx, gvk, []client.ListOption{client.MatchingLabels(a.owner.Labels())}, func(item *metav1.PartialObjectMetadata, ref ObjectRef) {
				l := liveObject{version: gvk.Version, cluster: item.Labels[v1alpha1.ClusterLabel], observed: observed(item)}
				mu.Lock()
				out[ref.id()] = l
				mu.Unlock()
			})
			if err == nil || meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("apply: list %s owned by Fleet %s: %w", gvk.Kind, a.owner, err)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// listPage is how many objects' metadata one list request asks for.
const listPage = 500

// listPages lists the metadata of the objects of one kind, page by page,
// handing each to read: a page at a time is held, never the whole kind
// with every object's managedFields.
func (a *Applier) listPages(ctx context.Context, gvk schema.GroupVersionKind, opts []client.ListOption, read func(*metav1.PartialObjectMetadata, ObjectRef)) error {
	cont := ""
	for {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := a.client.List(ctx, list, append(opts, client.Limit(listPage), client.Continue(cont))...); err != nil {
			return err
		}
		for i := range list.Items {
			item := &list.Items[i]
			read(item, ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: item.Namespace, Name: item.Name})
		}
		if cont = list.Continue; cont == "" {
			return nil
		}
	}
}
