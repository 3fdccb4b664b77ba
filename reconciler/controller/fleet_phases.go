package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/reconciler/source"
)

// fleetScope is one reconcile of one Fleet. Each field says which phase sets
// it; a phase reads only what the phases before it set.
type fleetScope struct {
	// fleet is the object reconciled; its status is written once, after
	// the last phase. Set by Reconcile.
	fleet *v1alpha1.Fleet
	// now is the instant expiry is judged against. Set by Reconcile.
	now time.Time
	// previous is the inventory the last reconcile recorded. Set by
	// Reconcile.
	previous *apply.Inventory

	// snapshot is the fetched revision's checkout. Set by fetchPhase.
	snapshot *source.Snapshot
	// revision is snapshot's commit. Set by fetchPhase.
	revision string
	// firstAttempt is true when no reconcile tried revision before. Set by
	// fetchPhase.
	firstAttempt bool

	// existing are the Fleet's VirtualClusters on the host, by name. Set
	// by loadPhase.
	existing map[string]*v1alpha1.VirtualCluster
	// loaded is the revision read and admitted. Set by loadPhase.
	loaded *loaded
	// applier writes host objects as this Fleet. Set by loadPhase.
	applier *apply.Applier

	// desired are the admitted, unexpired clusters, by name. Set by
	// classifyPhase.
	desired map[string]policy.Admission
	// kept were applied before and are not admitted now because their file
	// is broken or rejected (or a prune is blocked): they stay as they
	// were. Set by classifyPhase.
	kept map[string]string // name → why
	// removed are to be pruned: gone from Git, or expired. Set by
	// classifyPhase.
	removed []string
	// pruneBlocked says why removals are held back, if they are, and
	// heldBack names the clusters it holds. Set by classifyPhase.
	pruneBlocked string
	heldBack     []string
	// rewind reports a revision that does not descend from the one last
	// applied (a force push or reset), with what it removes; empty if not.
	// Set by classifyPhase.
	rewind string

	// hostOf is the host of each desired or existing cluster, and hosts
	// the hosts they (and the previous inventory) are on. Set by
	// hostsPhase, which also starts skip and failed.
	hostOf map[string]string
	hosts  map[string]*hostTarget

	// clusters are the Fleet's VirtualClusters as applied. Set by
	// applyClustersPhase.
	clusters *apply.Result
	// conflicts are objects warren does not own. Set by applyClustersPhase,
	// extended by pkiPhase and applyObjectsPhase.
	conflicts []apply.Conflict
	// skip are the desired clusters whose host objects this reconcile
	// leaves alone (a conflict, or a failure). Set by hostsPhase (a host
	// down), extended by applyClustersPhase, pkiPhase and renderPhase.
	skip map[string]bool
	// failed are admitted clusters this reconcile could not render or
	// apply; they keep what they had, and say why. Set by hostsPhase,
	// pkiPhase, renderPhase and applyObjectsPhase (a remote host failing).
	failed map[string]string
	// uids are the desired clusters' VirtualCluster UIDs, their host
	// objects' owner. Set by pkiPhase.
	uids map[string]types.UID
	// pki are the PKI Secrets of the clusters whose render is not cached.
	// Set by pkiPhase, dropped by renderPhase.
	pki map[string]*unstructured.Unstructured
	// objects are the rendered host objects, owned by their clusters and
	// prepared for the applier (those of a cluster whose render is cached
	// by their digests alone), and clusterOf names the cluster of each.
	// Set by renderPhase.
	objects   []apply.Object
	clusterOf map[string]string // ObjectRef.String() → cluster
	// inventory is what the Fleet owns after this reconcile. Set by
	// applyClustersPhase and applyObjectsPhase, kept whole by prunePhase
	// when a prune fails.
	inventory *apply.Inventory
	// changed are the clusters whose VirtualCluster or host objects this
	// reconcile wrote. Set by applyObjectsPhase.
	changed map[string]bool
	// reported is true once the clusters' status is written. Set by
	// reportPhase.
	reported bool
}

// fleetPhase is one step of a Fleet reconcile. An error it returns ends the
// reconcile; a reasonError also says what the Fleet's Ready condition says.
type fleetPhase func(ctx context.Context, s *fleetScope) error

// namedPhase is a phase with the name its duration is recorded under
// (PhaseDurationMetric).
type namedPhase struct {
	name string
	run  fleetPhase
}

// phases is the life of one Fleet reconcile, in order.
func (r *FleetReconciler) phases() []namedPhase {
	return []namedPhase{
		{"fetch", r.fetchPhase},
		{"load", r.loadPhase},
		{"classify", r.classifyPhase},
		{"hosts", r.hostsPhase},
		{"apply-clusters", r.applyClustersPhase},
		{"pki", r.pkiPhase},
		{"render", r.renderPhase},
		{"apply-objects", r.applyObjectsPhase},
		{"report", r.reportPhase},
		{"prune", r.prunePhase},
	}
}

// reconcile runs the phases, then summarises them in the Fleet's status. It
// returns how long until the next admitted cluster expires (zero for none).
func (r *FleetReconciler) reconcile(ctx context.Context, fleet *v1alpha1.Fleet) (time.Duration, error) {
	start := time.Now()
	previous, err := r.store().load(ctx, fleet)
	observePhase(fleet, "inventory-load", start)
	if err != nil {
		return 0, err
	}
	s := &fleetScope{fleet: fleet, now: time.Now(), previous: previous}
	for _, phase := range r.phases() {
		start = time.Now()
		err = phase.run(ctx, s)
		observePhase(fleet, phase.name, start)
		if err != nil {
			break
		}
	}
	if err != nil && s.desired != nil && !s.reported {
		// Applying failed: the clusters still say what happened to them.
		_ = r.reportPhase(ctx, s)
	}
	start = time.Now()
	err = r.storeInventory(ctx, s, err)
	observePhase(fleet, "inventory-save", start)
	r.summarise(s, err)
	return untilNextExpiry(s), err
}

// storeInventory records what the Fleet owns after the phases (none of
// which ended before knowing it): a failure to write it fails the reconcile,
// and the next one finds what was applied but not recorded as untracked.
func (r *FleetReconciler) storeInventory(ctx context.Context, s *fleetScope, err error) error {
	var re *reasonError
	if s.inventory == nil || (err != nil && !errors.As(err, &re)) {
		return err
	}
	if lerr := r.stillLeading(ctx); lerr != nil {
		return errors.Join(err, lerr)
	}
	if serr := r.store().save(ctx, s.fleet, s.inventory); serr != nil {
		return errors.Join(err, failedAt(v1alpha1.ApplyFailedReason, s.revision, serr))
	}
	return err
}

// fetchPhase brings the Fleet's repository up to date.
func (r *FleetReconciler) fetchPhase(ctx context.Context, s *fleetScope) error {
	fetchCtx, cancel := context.WithTimeout(ctx, s.fleet.GetTimeout().Duration)
	defer cancel()
	snap, err := r.fetch(fetchCtx, s.fleet)
	if err != nil {
		r.event(s.fleet, corev1.EventTypeWarning, v1alpha1.GitOperationFailedReason, err.Error())
		return failed(v1alpha1.GitOperationFailedReason, err)
	}
	s.firstAttempt = snap.Revision != s.fleet.Status.LastAttemptedRevision
	if s.firstAttempt {
		conditions.MarkReconciling(s.fleet, meta.ProgressingReason, "reconciling revision %s", snap.Revision)
	}
	s.fleet.Status.LastAttemptedRevision = snap.Revision
	s.snapshot, s.revision = snap, snap.Revision
	return nil
}

// loadPhase reads and admits the revision, against the clusters the host has.
func (r *FleetReconciler) loadPhase(ctx context.Context, s *fleetScope) error {
	var err error
	if s.existing, err = r.existingClusters(ctx, s.fleet); err != nil {
		return err
	}
	if s.loaded, err = r.load(s.fleet, s.snapshot, s.existing); err != nil {
		return failed(v1alpha1.LoadFailedReason, err)
	}
	s.applier, err = apply.New(r.ApplyClient, apply.Owner{Namespace: s.fleet.Namespace, Name: s.fleet.Name}, apply.Options{})
	return err
}

// classifyPhase decides, cluster by cluster, what this reconcile does.
func (r *FleetReconciler) classifyPhase(_ context.Context, s *fleetScope) error {
	c := classify(s.fleet, s.revision, s.loaded, s.existing, s.now)
	s.desired, s.kept, s.removed, s.pruneBlocked, s.heldBack = c.desired, c.kept, c.removed, c.pruneBlocked, c.heldBack
	if from := r.rewoundFrom(s.fleet, s.snapshot); from != "" {
		s.rewind = describeRewind(s, from)
		if s.firstAttempt {
			r.event(s.fleet, corev1.EventTypeWarning, ReasonRewound, s.rewind)
		}
	}
	return nil
}

// applyClustersPhase applies the desired clusters' VirtualCluster objects.
func (r *FleetReconciler) applyClustersPhase(ctx context.Context, s *fleetScope) error {
	if err := r.stillLeading(ctx); err != nil {
		return err
	}
	vcs := make([]*v1alpha1.VirtualCluster, 0, len(s.desired))
	for _, name := range sortedKeys(s.desired) {
		vcs = append(vcs, hostVirtualCluster(s.desired[name], s.loaded.Repo))
	}
	s.inventory = s.previous
	vcObjects, err := toUnstructured(vcs)
	if err != nil {
		return s.applyFailed(err)
	}
	res, err := s.applier.Apply(ctx, vcObjects, s.previous)
	if err != nil {
		s.inventory = keep(s.previous, res)
		return s.applyFailed(fmt.Errorf("applying VirtualClusters: %w", err))
	}
	s.clusters, s.conflicts = res, res.Conflicts
	for _, c := range res.Conflicts {
		s.skip[c.Object.Name] = true // a cluster another Fleet or a person owns
	}
	return nil
}

// pkiPhase reads, or generates once, the PKI Secret of each cluster about to
// be rendered, so rendering never reads the host. Clusters whose render is
// cached (their Secret is among the cached objects) are not read again.
func (r *FleetReconciler) pkiPhase(ctx context.Context, s *fleetScope) error {
	names := s.toRender()
	uids := make([]types.UID, len(names))
	secrets := make([]*unstructured.Unstructured, len(names))
	errs := make([]error, len(names))
	uidErrs := make([]error, len(names))
	// Several at a time: on a cold start this is key generation (CPU) and
	// one look-up per cluster.
	inParallel(len(names), func(i int) {
		t := s.hosts[s.hostOf[names[i]]]
		if uids[i], uidErrs[i] = r.ownerUID(ctx, s, names[i]); uidErrs[i] != nil {
			return
		}
		if r.renders.current(s.desired[names[i]], s.loaded.Repo, t.render, r.Version, uids[i]) {
			return
		}
		namespace := render.NamesFor(render.InputFor(s.desired[names[i]], s.loaded.Repo).Cluster).Namespace
		secrets[i], _, errs[i] = t.applier.PKISecret(ctx, namespace, names[i], t.previous)
	})
	s.uids, s.pki = map[string]types.UID{}, map[string]*unstructured.Unstructured{}
	for i, name := range names {
		if uidErrs[i] != nil {
			s.inventory = keep(s.previous, s.clusters)
			return s.applyFailed(uidErrs[i])
		}
		s.uids[name] = uids[i]
		if secrets[i] != nil {
			s.pki[name] = secrets[i]
		}
		s.clusterFailed(name, errs[i])
	}
	return nil
}

// renderPhase renders each cluster's host objects, owned by its
// VirtualCluster, its PKI Secret among them, and prepares them for the
// applier; a cluster whose render is cached is given by its objects'
// digests alone (the applier has it rendered again if they drifted).
func (r *FleetReconciler) renderPhase(_ context.Context, s *fleetScope) error {
	names := s.toRender()
	rendered := make([][]apply.Object, len(names))
	errs := make([]error, len(names))
	owner := fleetOwner(s.fleet)
	inParallel(len(names), func(i int) {
		opts := s.hosts[s.hostOf[names[i]]].render
		rendered[i], errs[i] = r.renders.get(s.desired[names[i]], s.loaded.Repo, opts, r.Version, s.uids[names[i]], s.pki[names[i]], owner)
	})
	s.pki = nil
	s.clusterOf = map[string]string{}
	total := 0
	for _, objs := range rendered {
		total += len(objs)
	}
	s.objects = make([]apply.Object, 0, total)
	for i, name := range names {
		if s.clusterFailed(name, errs[i]) {
			continue
		}
		for _, o := range rendered[i] {
			s.clusterOf[o.Ref().String()] = name
		}
		s.objects = append(s.objects, rendered[i]...)
	}
	return nil
}

// rerender renders a cluster of host t again, its PKI Secret read afresh,
// for an apply that found one of its cached objects drifted on the host.
func (r *FleetReconciler) rerender(s *fleetScope, t *hostTarget) apply.Rerender {
	return func(ctx context.Context, name string) ([]apply.Object, error) {
		a, ok := s.desired[name]
		if !ok {
			return nil, fmt.Errorf("cluster %s is not to be applied in this reconcile", name)
		}
		// The CAs of its cached render are the ones it has: a PKI Secret
		// deleted by hand is made again with them, never new ones.
		secret := r.renders.pkiOf(name)
		if secret == nil {
			namespace := render.NamesFor(render.InputFor(a, s.loaded.Repo).Cluster).Namespace
			var err error
			if secret, _, err = t.applier.PKISecret(ctx, namespace, name, t.previous); err != nil {
				return nil, err
			}
		}
		r.renders.forget(name)
		return r.renders.get(a, s.loaded.Repo, t.render, r.Version, s.uids[name], secret, fleetOwner(s.fleet))
	}
}

// applyObjectsPhase applies the rendered host objects and records the Fleet's
// new inventory, which keeps the entries of kept and failed clusters.
func (r *FleetReconciler) applyObjectsPhase(ctx context.Context, s *fleetScope) error {
	res, err := r.applyHosts(ctx, s)
	for _, f := range res.Unrendered {
		// Found drifted and not rendered again: kept as last applied.
		r.renders.forget(f.Cluster)
		s.clusterFailed(f.Cluster, f.Err)
	}
	s.inventory = apply.Merge(s.clusters.Inventory, res.Inventory, keptEntries(s.previous, s))
	if err != nil {
		s.inventory = apply.Merge(s.inventory, s.previous)
		// A failed cluster is rendered afresh next time, its PKI Secret
		// read again: another writer may have made it meanwhile (see
		// apply.Applier.PKISecret), and its CAs are the ones that stand.
		for _, f := range res.Failures {
			r.renders.forget(f.Cluster)
		}
		return s.applyFailed(fmt.Errorf("applying host objects: %w", err))
	}
	s.conflicts = append(s.conflicts, res.Conflicts...)
	// Objects left over by an apply whose inventory was never recorded
	// (the reconciler stopped mid-apply) are still this Fleet's: record them
	// so the prune that follows removes what is not rendered any more.
	s.inventory = apply.Merge(s.inventory, apply.Entries(append(s.clusters.Untracked, res.Untracked...)))

	s.changed = map[string]bool{}
	for _, c := range s.clusters.Changes {
		if c.Action != apply.Unchanged {
			s.changed[c.Object.Name] = true
		}
	}
	for _, c := range res.Changes {
		if c.Action != apply.Unchanged {
			s.changed[s.clusterOf[c.Object.String()]] = true
		}
	}
	var applied []string
	for _, name := range sortedKeys(s.desired) {
		if !s.skip[name] && s.changed[name] {
			applied = append(applied, name)
		}
	}
	for _, message := range appliedEvents(applied, s.revision) {
		r.event(s.fleet, corev1.EventTypeNormal, v1alpha1.AppliedReason, message)
	}
	return nil
}

// eventsPerCluster is how many clusters applied in one reconcile get an
// event each; more get one event that names the first of them. (A cold
// start of 5,000 clusters, one event each, overflowed client-go's event
// queue, which then dropped events of every kind.)
const eventsPerCluster = 10

// appliedEvents are the messages of the Applied events for the clusters
// applied in one reconcile, in order.
func appliedEvents(clusters []string, revision string) []string {
	if len(clusters) <= eventsPerCluster {
		out := make([]string, 0, len(clusters))
		for _, name := range clusters {
			out = append(out, fmt.Sprintf("cluster %s applied from %s", name, revision))
		}
		return out
	}
	return []string{fmt.Sprintf("%d clusters applied from %s: %s and %d more", len(clusters), revision,
		strings.Join(clusters[:eventsPerCluster], ", "), len(clusters)-eventsPerCluster)}
}

// reportPhase writes each cluster's status. It runs before pruning, which
// can wait a while for a removed cluster's namespace to go: the others'
// status should not wait for it. A failed write is logged, never fatal.
func (r *FleetReconciler) reportPhase(ctx context.Context, s *fleetScope) error {
	s.reported = true
	if err := r.reportClusters(ctx, s); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "updating VirtualCluster status")
	}
	return nil
}

// prunePhase deletes what the Fleet no longer renders.
func (r *FleetReconciler) prunePhase(ctx context.Context, s *fleetScope) error {
	keep, err := r.prune(ctx, s.fleet, s.hosts, s.removed, s.previous, s.inventory)
	s.inventory = apply.Merge(s.inventory, apply.Entries(keep))
	if err != nil {
		// Keep what was to be pruned, so the next reconcile tries again:
		// forgotten, it would be orphaned for good.
		s.inventory = apply.Merge(s.inventory, s.previous)
		return failedAt(meta.PruneFailedReason, s.revision, err)
	}
	return nil
}

// toRender are the desired clusters, in name order, that this reconcile
// renders and applies.
func (s *fleetScope) toRender() []string {
	var names []string
	for _, name := range sortedKeys(s.desired) {
		if !s.skip[name] {
			names = append(names, name)
		}
	}
	return names
}

// clusterFailed records that a cluster's PKI Secret or render failed: a
// conflict, or a failure that keeps the cluster as last applied while the
// others go on. It reports whether err was one.
func (s *fleetScope) clusterFailed(name string, err error) bool {
	var conflict *apply.ConflictError
	switch {
	case err == nil:
		return false
	case errors.As(err, &conflict):
		s.conflicts = append(s.conflicts, conflict.Conflict)
	default:
		s.failed[name] = err.Error()
	}
	s.skip[name] = true
	return true
}

// applyFailed is an apply error as the Fleet reports it.
func (s *fleetScope) applyFailed(err error) error {
	return failedAt(v1alpha1.ApplyFailedReason, s.revision, err)
}

// inParallel runs f(0..n-1) on renderWorkers goroutines and waits for them.
func inParallel(n int, f func(i int)) { inParallelBy(renderWorkers(), n, f) }

// inParallelBy is inParallel with its own number of workers.
// It starts at most workers goroutines, each taking the next index until
// none is left: at 5,000 clusters, not one goroutine per cluster.
func inParallelBy(workers, n int, f func(i int)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}

// renderWorkers is how many clusters render at once.
func renderWorkers() int { return 2 * runtime.GOMAXPROCS(0) }

// statusWriters is how many clusters' statuses are written at once: each
// write waits on the API server, not on this process's CPU, and the
// client's own rate limit still bounds them.
const statusWriters = 16

// classification is what classify decides.
type classification struct {
	desired      map[string]policy.Admission
	kept         map[string]string
	removed      []string
	pruneBlocked string
	heldBack     []string
}

// classify decides, cluster by cluster, what a reconcile of revision does
// with what l admitted and the host has: apply (desired), keep as last
// applied, or remove, holding back a removal of more than half the clusters
// unless the Fleet allows a mass prune.
func classify(fleet *v1alpha1.Fleet, revision string, l *loaded, existing map[string]*v1alpha1.VirtualCluster, now time.Time) classification {
	c := classification{desired: map[string]policy.Admission{}, kept: map[string]string{}}
	expired := map[string]bool{}
	for _, a := range l.Admitted {
		if exp := a.Cluster.Object.Spec.ExpiresAt; exp != nil && !exp.After(now) {
			expired[a.Cluster.Object.Name] = true
			continue
		}
		c.desired[a.Cluster.Object.Name] = a
	}
	// A file with a problem may still be meant to define what it defined
	// before: the clusters it held are kept, never pruned.
	troubled := map[string][]string{}
	for _, pr := range l.Problems {
		troubled[pr.File] = append(troubled[pr.File], pr.String())
	}
	var goneFromGit []string
	for name, vc := range existing {
		if _, ok := c.desired[name]; ok {
			continue
		}
		switch {
		case expired[name]:
			c.removed = append(c.removed, name)
		case len(troubled[vc.Status.SourcePath]) > 0:
			c.kept[name] = strings.Join(troubled[vc.Status.SourcePath], "; ")
		default:
			goneFromGit = append(goneFromGit, name)
		}
	}
	sort.Strings(goneFromGit)
	c.holdBack(fleet, revision, goneFromGit, len(existing))
	sort.Strings(c.removed)
	return c
}

// holdBack decides about the clusters gone from Git: removed, or kept when
// pruning is off or would remove more than half of all clusters.
func (c *classification) holdBack(fleet *v1alpha1.Fleet, revision string, goneFromGit []string, existing int) {
	switch {
	case !fleet.PruneEnabled():
		for _, name := range goneFromGit {
			c.kept[name] = "removed from Git, but pruning is off for this Fleet"
		}
	case len(goneFromGit) > 0 && 2*len(goneFromGit) > existing && !fleet.Spec.AllowMassPrune:
		c.pruneBlocked = fmt.Sprintf("revision %s removes %d of %d clusters (%s); more than half is held back unless spec.allowMassPrune is true",
			revision, len(goneFromGit), existing, strings.Join(goneFromGit, ", "))
		for _, name := range goneFromGit {
			c.kept[name] = "its removal is held back: " + c.pruneBlocked
		}
		c.heldBack = goneFromGit
	default:
		c.removed = append(c.removed, goneFromGit...)
	}
}

// untilNextExpiry is how long until the first desired cluster expires.
func untilNextExpiry(s *fleetScope) time.Duration {
	var next time.Duration
	for _, a := range s.desired {
		if exp := a.Cluster.Object.Spec.ExpiresAt; exp != nil {
			if d := exp.Sub(s.now); next == 0 || d < next {
				next = d
			}
		}
	}
	return next
}

// keep returns the inventory to record after a failed apply: nothing the
// Fleet owned before is forgotten.
func keep(previous *apply.Inventory, res *apply.Result) *apply.Inventory {
	if res == nil {
		return previous
	}
	return apply.Merge(res.Inventory, previous)
}

// keptEntries are the previous inventory entries of clusters that stay as
// last applied.
func keptEntries(previous *apply.Inventory, s *fleetScope) *apply.Inventory {
	var entries []apply.Entry
	for name := range s.kept {
		entries = append(entries, apply.ForCluster(previous, name)...)
	}
	for name := range s.failed {
		entries = append(entries, apply.ForCluster(previous, name)...)
	}
	return apply.Entries(entries)
}

// ownerUID is the UID of the VirtualCluster that owns a cluster's host
// objects: none for a cluster on a remote host, where no VirtualCluster
// exists for its garbage collector to find (its prune is the inventory's).
func (r *FleetReconciler) ownerUID(ctx context.Context, s *fleetScope, name string) (types.UID, error) {
	if s.hostOf[name] != v1alpha1.LocalHost {
		return "", nil
	}
	return r.uidOf(ctx, s.existing, name)
}

// uidOf returns the UID of a cluster's VirtualCluster, reading it from the
// API server when it was created in this reconcile.
func (r *FleetReconciler) uidOf(ctx context.Context, existing map[string]*v1alpha1.VirtualCluster, name string) (types.UID, error) {
	if vc, ok := existing[name]; ok {
		return vc.UID, nil
	}
	var vc v1alpha1.VirtualCluster
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
		return "", fmt.Errorf("reading VirtualCluster %s: %w", name, err)
	}
	return vc.UID, nil
}

// prune deletes what the Fleet no longer renders, host by host, and waits,
// within bounds, for removed clusters' namespaces to be gone. It returns
// the stale entries it could not prune because their host is down: they
// stay in the inventory.
func (r *FleetReconciler) prune(ctx context.Context, fleet *v1alpha1.Fleet, hosts map[string]*hostTarget, removed []string, previous, current *apply.Inventory) ([]apply.Entry, error) {
	if !fleet.PruneEnabled() {
		return nil, nil
	}
	stale := apply.Stale(previous, current)
	if len(stale) == 0 {
		return nil, nil
	}
	if err := r.stillLeading(ctx); err != nil {
		return nil, err
	}
	if err := r.stillOurs(ctx, fleet); err != nil {
		return nil, err
	}
	res, keep, err := r.pruneHosts(ctx, hosts, stale)
	for _, s := range res.Skipped {
		r.event(fleet, corev1.EventTypeWarning, "PruneSkipped", fmt.Sprintf("%s no longer carries this Fleet's labels; left alone", s))
	}
	if err != nil {
		return keep, fmt.Errorf("pruning: %w", err)
	}
	held := map[string]bool{}
	for _, e := range keep {
		held[e.Cluster] = true
	}
	for _, name := range removed {
		if !held[name] {
			r.event(fleet, corev1.EventTypeNormal, "Pruned", fmt.Sprintf("cluster %s removed with everything it held", name))
		}
	}
	return keep, nil
}

// reasonError is a phase's failure with the reason the Fleet's Ready
// condition gives for it.
type reasonError struct {
	reason string
	// revision, when set, prefixes the condition's message.
	revision string
	err      error
}

func (e *reasonError) Error() string { return e.err.Error() }

// message is what the Ready condition says.
func (e *reasonError) message() string {
	if e.revision == "" {
		return e.err.Error()
	}
	return "revision " + e.revision + ": " + e.err.Error()
}
func (e *reasonError) Unwrap() error { return e.err }

// failed is err with the reason it gives the Fleet.
func failed(reason string, err error) error { return &reasonError{reason: reason, err: err} }

// failedAt is err with the reason it gives the Fleet, at revision.
func failedAt(reason, revision string, err error) error {
	return &reasonError{reason: reason, revision: revision, err: err}
}

// summarise sets the Fleet's Ready and PruneBlocked conditions and the
// status fields the phases fill, from what the phases did and err, the
// error that ended them. An error without a reason (the host could not be
// read) leaves the conditions as they were.
func (r *FleetReconciler) summarise(s *fleetScope, err error) {
	fleet := s.fleet
	var re *reasonError
	if err != nil && !errors.As(err, &re) {
		return
	}
	if s.desired == nil {
		// Fetching or loading failed: nothing else is known.
		if re != nil {
			conditions.MarkFalse(fleet, meta.ReadyCondition, re.reason, "%s", re.message())
		}
		return
	}
	fleet.Status.AdmittedClusters = len(s.loaded.Admitted)
	fleet.Status.RejectedClusters = countRejected(s.loaded)
	if s.pruneBlocked != "" {
		conditions.MarkTrue(fleet, v1alpha1.PruneBlockedCondition, v1alpha1.PruneBlockedReason, "%s", s.pruneBlocked)
	} else {
		conditions.Delete(fleet, v1alpha1.PruneBlockedCondition)
	}
	switch {
	case re != nil:
		conditions.MarkFalse(fleet, meta.ReadyCondition, re.reason, "%s", re.message())
	case markHostsDown(s):
	case len(s.failed) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, v1alpha1.ApplyFailedReason, "revision %s: %s", s.revision, summariseFailures(s.failed))
	case len(s.loaded.Problems) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, v1alpha1.ValidationFailedReason, "revision %s: %s", s.revision, summariseProblems(s.loaded.Problems))
	case len(s.conflicts) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, v1alpha1.ConflictReason, "revision %s: %s", s.revision, summariseConflicts(s.conflicts))
	case s.pruneBlocked != "":
		conditions.MarkFalse(fleet, meta.ReadyCondition, v1alpha1.PruneBlockedReason, "%s", s.pruneBlocked)
	default:
		conditions.MarkTrue(fleet, meta.ReadyCondition, meta.ReconciliationSucceededReason, "applied revision %s: %d clusters", s.revision, len(s.desired))
	}
	if s.rewind != "" {
		// Whatever the outcome, the Fleet says it came from a rewind.
		ready := conditions.Get(fleet, meta.ReadyCondition)
		ready.Message = s.rewind + "; " + ready.Message
		conditions.Set(fleet, ready)
	}
	if re == nil && appliedInFull(s) {
		fleet.Status.LastAppliedRevision = s.revision
	}
}

// appliedInFull reports whether a reconcile that ended without error
// applied its revision in full: every admitted cluster written, every
// removal pruned. A cluster kept as last applied (it failed, or warren does
// not own its objects), a removal held back, or a host down leaves
// status.lastAppliedRevision where it was.
func appliedInFull(s *fleetScope) bool {
	return len(s.failed) == 0 && len(s.conflicts) == 0 && s.pruneBlocked == "" && s.downHosts() == ""
}
