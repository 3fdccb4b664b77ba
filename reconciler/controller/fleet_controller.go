// Package controller puts warren's pipeline behind Kubernetes controllers.
// The Fleet controller turns one Git repository into VirtualClusters and
// their host objects (source → load → admit → render → apply → prune →
// status); the readiness controller reports each cluster's control plane.
// It decides what happens and in which order; the stages it calls do the
// work. It never writes to a host object warren did not create, and nothing
// it cannot read from Git (a broken file, an unreachable remote) ever leads
// it to delete.
package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	kuberecorder "k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/reconciler/source"
)

const (
	// FleetFinalizer lets the controller prune a deleted Fleet's clusters.
	FleetFinalizer = "warren.dev/fleet"

	// Fleet condition reasons.
	ReasonSucceeded        = "ReconciliationSucceeded"
	ReasonGitFailed        = "GitOperationFailed"
	ReasonLoadFailed       = "LoadFailed"
	ReasonValidationFailed = "ValidationFailed"
	ReasonConflict         = "Conflict"
	ReasonApplyFailed      = "ApplyFailed"
	ReasonPruneFailed      = "PruneFailed"
	ReasonProgressing      = "Progressing"

	// pruneWait bounds how long one reconcile waits for a removed cluster's
	// namespace to be gone before it reports and tries again later.
	pruneWait = 2 * time.Minute
)

// FleetReconciler reconciles Fleets.
type FleetReconciler struct {
	// Client reads from the manager's cache and patches status.
	client.Client
	// APIReader reads from the API server, for objects just created.
	APIReader client.Reader
	// ApplyClient reads from the API server and learns new kinds; the
	// Applier needs both.
	ApplyClient   client.Client
	EventRecorder kuberecorder.EventRecorder
	Metrics       fluxcontroller.Metrics

	// CacheDir holds one Git cache per Fleet.
	CacheDir string
	// Render holds what rendering needs from the host (service CIDR, syncer image).
	Render render.Options
	// Version is warren's own version; a new one re-renders every cluster.
	Version string

	renders renderCache
	repos   sync.Map // types.NamespacedName → *source.Repository
	loads   sync.Map // types.NamespacedName → *loaded
}

// loaded is what one revision of a Fleet's repository loaded and admitted to,
// kept so an unchanged revision is not parsed again.
type loaded struct {
	key      string
	repo     *load.Repository
	admitted []policy.Admission
	problems []load.Problem
}

// Reconcile runs one pass of a Fleet.
func (r *FleetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	start := time.Now()
	fleet := &v1alpha1.Fleet{}
	if err := r.Get(ctx, req.NamespacedName, fleet); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	// Status is written once, at the end, and only if it changed.
	patcher := patch.NewSerialPatcher(fleet, r.Client)
	defer func() {
		if !fleet.DeletionTimestamp.IsZero() && !controllerutil.ContainsFinalizer(fleet, FleetFinalizer) {
			r.Metrics.RecordDuration(ctx, fleet, start)
			return
		}
		if v, ok := fleet.GetAnnotations()[v1alpha1.RequestedAtAnnotation]; ok {
			fleet.Status.LastHandledRequestedAt = v
		}
		if retErr == nil || conditions.IsFalse(fleet, meta.ReadyCondition) {
			fleet.Status.ObservedGeneration = fleet.Generation
		}
		conditions.Delete(fleet, meta.ReconcilingCondition)
		if err := patcher.Patch(ctx, fleet, patch.WithOwnedConditions{Conditions: []string{
			meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition, v1alpha1.PruneBlockedReason,
		}}, patch.WithFieldOwner(apply.FieldManager)); err != nil && !apierrors.IsNotFound(err) {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
		r.Metrics.RecordDuration(ctx, fleet, start)
		r.Metrics.RecordReadiness(ctx, fleet)
		r.Metrics.RecordSuspend(ctx, fleet, fleet.Spec.Suspend)
	}()

	if !fleet.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, fleet)
	}
	if !controllerutil.ContainsFinalizer(fleet, FleetFinalizer) {
		controllerutil.AddFinalizer(fleet, FleetFinalizer)
		return ctrl.Result{Requeue: true}, nil
	}
	if fleet.Spec.Suspend {
		ctrl.LoggerFrom(ctx).Info("suspended; nothing done")
		return ctrl.Result{}, nil
	}
	nextExpiry, err := r.reconcile(ctx, fleet)
	if err != nil {
		return ctrl.Result{}, err
	}
	after := fleet.GetRequeueAfter()
	if nextExpiry > 0 && nextExpiry < after {
		// A preview cluster expires before the next poll: come back then.
		after = nextExpiry
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// plan is one reconcile's view of a Fleet: what Git asks for and what the
// host holds.
type plan struct {
	fleet    *v1alpha1.Fleet
	revision string
	loaded   *loaded
	// existing are the Fleet's VirtualClusters on the host, by name.
	existing map[string]*v1alpha1.VirtualCluster
	// desired are the admitted, unexpired clusters, by name.
	desired map[string]policy.Admission
	// kept were applied before and are not admitted now because their file
	// is broken or rejected (or a prune is blocked): they stay as they were.
	kept map[string]string // name → why
	// removed are to be pruned: gone from Git, or expired.
	removed []string
	// pruneBlocked says why removals are held back, if they are.
	pruneBlocked string
	// failed are admitted clusters this reconcile could not render or
	// apply; they keep what they had, and say why.
	failed map[string]string
	// changed are the clusters whose VirtualCluster or host objects this
	// reconcile wrote.
	changed map[string]bool
}

// reconcile runs the pipeline once. It returns how long until the next
// admitted cluster expires (zero for none).
func (r *FleetReconciler) reconcile(ctx context.Context, fleet *v1alpha1.Fleet) (time.Duration, error) {
	log := ctrl.LoggerFrom(ctx)
	timeout := fleet.GetTimeout().Duration
	fetchCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	snap, err := r.fetch(fetchCtx, fleet)
	if err != nil {
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonGitFailed, "%s", err)
		r.event(fleet, corev1.EventTypeWarning, ReasonGitFailed, err.Error())
		return 0, err
	}
	if snap.Revision != fleet.Status.LastAttemptedRevision {
		conditions.MarkReconciling(fleet, ReasonProgressing, "reconciling revision %s", snap.Revision)
	}
	fleet.Status.LastAttemptedRevision = snap.Revision

	p := &plan{fleet: fleet, revision: snap.Revision}
	if p.existing, err = r.existingClusters(ctx, fleet); err != nil {
		return 0, err
	}
	if p.loaded, err = r.load(fleet, snap, p.existing); err != nil {
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonLoadFailed, "%s", err)
		return 0, err
	}
	now := time.Now()
	r.classify(p, now)

	applier, err := apply.New(r.ApplyClient, apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}, apply.Options{})
	if err != nil {
		return 0, err
	}
	previous := fleet.Status.Inventory
	inventory, conflicts, applyErr := r.applyClusters(ctx, applier, p, previous)
	fleet.Status.Inventory = inventory

	// Report before pruning: waiting for a removed cluster's namespace to
	// go can take a while, and the others' status should not wait for it.
	if err := r.reportClusters(ctx, p, conflicts); err != nil {
		log.Error(err, "updating VirtualCluster status")
	}
	var pruneErr error
	if applyErr == nil {
		pruneErr = r.prune(ctx, applier, p, previous, inventory)
		if pruneErr != nil {
			// Keep what was to be pruned, so the next reconcile tries
			// again: forgotten, it would be orphaned for good.
			fleet.Status.Inventory = apply.Merge(inventory, previous)
		}
	}

	fleet.Status.AdmittedClusters = len(p.loaded.admitted)
	fleet.Status.RejectedClusters = countRejected(p.loaded)
	r.summarise(p, conflicts, applyErr, pruneErr)
	if applyErr == nil && pruneErr == nil {
		fleet.Status.LastAppliedRevision = snap.Revision
	}
	return untilNextExpiry(p, now), errors.Join(applyErr, pruneErr)
}

// untilNextExpiry is how long until the first desired cluster expires.
func untilNextExpiry(p *plan, now time.Time) time.Duration {
	var next time.Duration
	for _, a := range p.desired {
		if exp := a.Cluster.Object.Spec.ExpiresAt; exp != nil {
			if d := exp.Sub(now); next == 0 || d < next {
				next = d
			}
		}
	}
	return next
}

// fetch brings the Fleet's repository up to date.
func (r *FleetReconciler) fetch(ctx context.Context, fleet *v1alpha1.Fleet) (*source.Snapshot, error) {
	key := types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name}
	auth, err := fleetAuth(ctx, r.APIReader, fleet)
	if err != nil {
		return nil, err
	}
	// A Repository keeps its cache between reconciles; a changed URL or
	// credentials opens a new one (Open does not contact the remote).
	var repo *source.Repository
	if cached, ok := r.repos.Load(key); ok && cached.(*cachedRepo).matches(fleet.Spec.URL, auth) {
		repo = cached.(*cachedRepo).repo
	} else {
		if repo, err = source.Open(source.Options{
			URL:      fleet.Spec.URL,
			Auth:     auth,
			CacheDir: filepath.Join(r.CacheDir, fleet.Namespace, fleet.Name),
		}); err != nil {
			return nil, err
		}
		r.repos.Store(key, &cachedRepo{url: fleet.Spec.URL, auth: auth, repo: repo})
	}
	var ref source.Ref
	if fr := fleet.Spec.Ref; fr != nil {
		ref = source.Ref{Branch: fr.Branch, Tag: fr.Tag, Commit: fr.Commit}
	}
	return repo.Fetch(ctx, ref)
}

// fleetAuth reads the Fleet's Git credentials from spec.secretRef (nil when
// it names none). Fetching and pushing use the same ones.
func fleetAuth(ctx context.Context, reader client.Reader, fleet *v1alpha1.Fleet) (*source.Auth, error) {
	ref := fleet.Spec.SecretRef
	if ref == nil {
		return nil, nil
	}
	var secret corev1.Secret
	if err := reader.Get(ctx, client.ObjectKey{Namespace: fleet.Namespace, Name: ref.Name}, &secret); err != nil {
		return nil, fmt.Errorf("reading credentials Secret %s/%s: %w", fleet.Namespace, ref.Name, err)
	}
	auth, err := source.AuthFromSecret(secret.Data)
	if err != nil {
		return nil, fmt.Errorf("credentials Secret %s/%s: %w", fleet.Namespace, ref.Name, err)
	}
	return auth, nil
}

type cachedRepo struct {
	url  string
	auth *source.Auth
	repo *source.Repository
}

func (c *cachedRepo) matches(url string, auth *source.Auth) bool {
	if c.url != url || (c.auth == nil) != (auth == nil) {
		return false
	}
	return auth == nil || reflect.DeepEqual(*c.auth, *auth)
}

// existingClusters lists the Fleet's VirtualClusters on the host.
func (r *FleetReconciler) existingClusters(ctx context.Context, fleet *v1alpha1.Fleet) (map[string]*v1alpha1.VirtualCluster, error) {
	var list v1alpha1.VirtualClusterList
	owner := apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}
	if err := r.List(ctx, &list, client.MatchingLabels(owner.Labels())); err != nil {
		return nil, fmt.Errorf("listing VirtualClusters: %w", err)
	}
	out := make(map[string]*v1alpha1.VirtualCluster, len(list.Items))
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// load reads and admits the snapshot, reusing the last result when neither
// the revision nor the set of running clusters changed.
func (r *FleetReconciler) load(fleet *v1alpha1.Fleet, snap *source.Snapshot, existing map[string]*v1alpha1.VirtualCluster) (*loaded, error) {
	names := make([]string, 0, len(existing))
	for name := range existing {
		names = append(names, name)
	}
	sort.Strings(names)
	key := snap.Revision + "\x00" + fleet.Spec.Path + "\x00" + strings.Join(names, ",")
	fleetKey := types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name}
	if l, ok := r.loads.Load(fleetKey); ok && l.(*loaded).key == key {
		return l.(*loaded), nil
	}
	root, err := snap.Join(fleet.Spec.Path)
	if err != nil {
		return nil, fmt.Errorf("spec.path %q: %w", fleet.Spec.Path, err)
	}
	repo, problems, err := load.Dir(root)
	if err != nil {
		return nil, err
	}
	admitted, rejected := policy.Admit(repo, policy.Options{Existing: names})
	problems = append(problems, rejected...)
	load.Sort(problems)
	l := &loaded{key: key, repo: repo, admitted: admitted, problems: problems}
	r.loads.Store(fleetKey, l)
	return l, nil
}

// classify decides, cluster by cluster, what this reconcile does.
func (r *FleetReconciler) classify(p *plan, now time.Time) {
	p.desired = map[string]policy.Admission{}
	p.kept = map[string]string{}
	expired := map[string]bool{}
	for _, a := range p.loaded.admitted {
		if exp := a.Cluster.Object.Spec.ExpiresAt; exp != nil && !exp.After(now) {
			expired[a.Cluster.Object.Name] = true
			continue
		}
		p.desired[a.Cluster.Object.Name] = a
	}
	// A file with a problem may still be meant to define what it defined
	// before: the clusters it held are kept, never pruned.
	troubled := map[string][]string{}
	for _, pr := range p.loaded.problems {
		troubled[pr.File] = append(troubled[pr.File], pr.String())
	}
	var goneFromGit []string
	for name, vc := range p.existing {
		if _, ok := p.desired[name]; ok {
			continue
		}
		switch {
		case expired[name]:
			p.removed = append(p.removed, name)
		case len(troubled[vc.Status.SourcePath]) > 0:
			p.kept[name] = strings.Join(troubled[vc.Status.SourcePath], "; ")
		default:
			goneFromGit = append(goneFromGit, name)
		}
	}
	sort.Strings(goneFromGit)
	switch {
	case !p.fleet.PruneEnabled():
		for _, name := range goneFromGit {
			p.kept[name] = "removed from Git, but pruning is off for this Fleet"
		}
	case len(goneFromGit) > 0 && 2*len(goneFromGit) > len(p.existing) && !p.fleet.Spec.AllowMassPrune:
		p.pruneBlocked = fmt.Sprintf("revision %s removes %d of %d clusters (%s); more than half is held back unless spec.allowMassPrune is true",
			p.revision, len(goneFromGit), len(p.existing), strings.Join(goneFromGit, ", "))
		for _, name := range goneFromGit {
			p.kept[name] = "its removal is held back: " + p.pruneBlocked
		}
	default:
		p.removed = append(p.removed, goneFromGit...)
	}
	sort.Strings(p.removed)
}

// applyClusters applies the desired clusters' VirtualCluster objects, then
// their rendered host objects (each owned by its VirtualCluster). It returns
// the Fleet's new inventory, which keeps the entries of kept clusters.
func (r *FleetReconciler) applyClusters(ctx context.Context, applier *apply.Applier, p *plan, previous *apply.Inventory) (*apply.Inventory, []apply.Conflict, error) {
	names := sortedKeys(p.desired)
	vcs := make([]*v1alpha1.VirtualCluster, 0, len(names))
	for _, name := range names {
		vcs = append(vcs, hostVirtualCluster(p.desired[name], p.loaded.repo))
	}
	vcObjects, err := toUnstructured(vcs)
	if err != nil {
		return previous, nil, err
	}
	vcResult, err := applier.Apply(ctx, vcObjects, previous)
	if err != nil {
		return keep(previous, vcResult), nil, fmt.Errorf("applying VirtualClusters: %w", err)
	}
	conflicts := vcResult.Conflicts
	blocked := map[string]bool{}
	for _, c := range vcResult.Conflicts {
		blocked[c.Object.Name] = true // a cluster another Fleet or a person owns
	}

	// Render (and make PKI bundles for) the clusters several at a time: on a
	// cold start this is CPU (kustomize, key generation) and one look-up
	// per cluster. The results are used in name order.
	renders := make([]renderResult, len(names))
	var wg sync.WaitGroup
	slots := make(chan struct{}, renderWorkers())
	for i, name := range names {
		if blocked[name] {
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			uid, err := r.uidOf(ctx, p.existing, name)
			if err != nil {
				renders[i].uidErr = err
				return
			}
			renders[i].objects, renders[i].err = r.renders.get(p.desired[name], p.loaded.repo, r.Render, r.Version, uid, func(namespace, cluster string) (*unstructuredObject, error) {
				secret, _, err := applier.PKISecret(ctx, namespace, cluster, previous)
				return secret, err
			})
		})
	}
	wg.Wait()

	var objects []*unstructuredObject
	clusterOf := map[string]string{} // ObjectRef.String() → cluster
	p.failed = map[string]string{}
	for i, name := range names {
		if blocked[name] {
			continue
		}
		if err := renders[i].uidErr; err != nil {
			return keep(previous, vcResult), conflicts, err
		}
		rendered, err := renders[i].objects, renders[i].err
		var conflict *apply.ConflictError
		switch {
		case errors.As(err, &conflict):
			conflicts = append(conflicts, conflict.Conflict)
			blocked[name] = true
			continue
		case err != nil:
			// This cluster stays as last applied; the others go on.
			p.failed[name] = err.Error()
			blocked[name] = true
			continue
		}
		for _, o := range rendered {
			clusterOf[refOf(o).String()] = name
		}
		objects = append(objects, rendered...)
	}
	objResult, err := applier.Apply(ctx, objects, previous)
	inventory := apply.Merge(vcResult.Inventory, objResult.Inventory, keptEntries(previous, p))
	if err != nil {
		return apply.Merge(inventory, previous), conflicts, fmt.Errorf("applying host objects: %w", err)
	}
	conflicts = append(conflicts, objResult.Conflicts...)
	// Objects left over by an apply whose inventory was never recorded
	// (the reconciler stopped mid-apply) are still this Fleet's: record them
	// so the prune that follows removes what is not rendered any more.
	inventory = apply.Merge(inventory, apply.Entries(append(vcResult.Untracked, objResult.Untracked...)))

	p.changed = map[string]bool{}
	for _, c := range vcResult.Changes {
		if c.Action != apply.Unchanged {
			p.changed[c.Object.Name] = true
		}
	}
	for _, c := range objResult.Changes {
		if c.Action != apply.Unchanged {
			p.changed[clusterOf[c.Object.String()]] = true
		}
	}
	for _, name := range names {
		if !blocked[name] && p.changed[name] {
			r.event(p.fleet, corev1.EventTypeNormal, "Applied", fmt.Sprintf("cluster %s applied from %s", name, p.revision))
		}
	}
	return inventory, conflicts, nil
}

// renderResult is one cluster's render: its objects, or why it has none
// (uidErr fails the whole apply, err only the cluster).
type renderResult struct {
	objects     []*unstructuredObject
	err, uidErr error
}

// renderWorkers is how many clusters render at once.
func renderWorkers() int { return 2 * runtime.GOMAXPROCS(0) }

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
func keptEntries(previous *apply.Inventory, p *plan) *apply.Inventory {
	var entries []apply.Entry
	for name := range p.kept {
		entries = append(entries, apply.ForCluster(previous, name)...)
	}
	for name := range p.failed {
		entries = append(entries, apply.ForCluster(previous, name)...)
	}
	return apply.Entries(entries)
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

// prune deletes what the Fleet no longer renders and waits, within bounds,
// for removed clusters' namespaces to be gone.
func (r *FleetReconciler) prune(ctx context.Context, applier *apply.Applier, p *plan, previous, current *apply.Inventory) error {
	if !p.fleet.PruneEnabled() {
		return nil
	}
	stale := apply.Stale(previous, current)
	if len(stale) == 0 {
		return nil
	}
	res, err := applier.Prune(ctx, stale)
	if err != nil {
		return fmt.Errorf("pruning: %w", err)
	}
	for _, s := range res.Skipped {
		r.event(p.fleet, corev1.EventTypeWarning, "PruneSkipped", fmt.Sprintf("%s no longer carries this Fleet's labels; left alone", s))
	}
	var gone []apply.ObjectRef
	for _, ref := range res.Deleted {
		if ref.Kind == "Namespace" || ref.Kind == v1alpha1.VirtualClusterKind {
			gone = append(gone, ref)
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, pruneWait)
	defer cancel()
	if err := applier.WaitForDeletion(waitCtx, gone); err != nil {
		return fmt.Errorf("waiting for pruned clusters to be gone: %w", err)
	}
	for _, name := range p.removed {
		r.event(p.fleet, corev1.EventTypeNormal, "Pruned", fmt.Sprintf("cluster %s removed with everything it held", name))
	}
	return nil
}

// finalize prunes everything a deleted Fleet owned, then lets it go.
func (r *FleetReconciler) finalize(ctx context.Context, fleet *v1alpha1.Fleet) (ctrl.Result, error) {
	if fleet.PruneEnabled() && fleet.Status.Inventory != nil && len(fleet.Status.Inventory.Entries) > 0 {
		applier, err := apply.New(r.ApplyClient, apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}, apply.Options{})
		if err != nil {
			return ctrl.Result{}, err
		}
		p := &plan{fleet: fleet}
		if err := r.prune(ctx, applier, p, fleet.Status.Inventory, apply.Entries(nil)); err != nil {
			conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonPruneFailed, "%s", err)
			return ctrl.Result{}, err
		}
	}
	key := types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name}
	r.repos.Delete(key)
	r.loads.Delete(key)
	controllerutil.RemoveFinalizer(fleet, FleetFinalizer)
	return ctrl.Result{}, nil
}

// summarise sets the Fleet's Ready and PruneBlocked conditions.
func (r *FleetReconciler) summarise(p *plan, conflicts []apply.Conflict, applyErr, pruneErr error) {
	fleet := p.fleet
	if p.pruneBlocked != "" {
		conditions.MarkTrue(fleet, v1alpha1.PruneBlockedReason, v1alpha1.PruneBlockedReason, "%s", p.pruneBlocked)
	} else {
		conditions.Delete(fleet, v1alpha1.PruneBlockedReason)
	}
	switch {
	case applyErr != nil:
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonApplyFailed, "revision %s: %s", p.revision, applyErr)
	case pruneErr != nil:
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonPruneFailed, "revision %s: %s", p.revision, pruneErr)
	case len(p.failed) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonApplyFailed, "revision %s: %s", p.revision, summariseFailures(p.failed))
	case len(p.loaded.problems) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonValidationFailed, "revision %s: %s", p.revision, summariseProblems(p.loaded.problems))
	case len(conflicts) > 0:
		conditions.MarkFalse(fleet, meta.ReadyCondition, ReasonConflict, "revision %s: %s", p.revision, summariseConflicts(conflicts))
	case p.pruneBlocked != "":
		conditions.MarkFalse(fleet, meta.ReadyCondition, v1alpha1.PruneBlockedReason, "%s", p.pruneBlocked)
	default:
		conditions.MarkTrue(fleet, meta.ReadyCondition, ReasonSucceeded, "applied revision %s: %d clusters", p.revision, len(p.desired))
	}
}

// maxListed bounds the problems and conflicts a condition message lists.
const maxListed = 10

func summariseProblems(problems []load.Problem) string {
	parts := make([]string, 0, maxListed)
	for i, pr := range problems {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(problems)-maxListed))
			break
		}
		parts = append(parts, pr.String())
	}
	return fmt.Sprintf("%d problem(s): %s", len(problems), strings.Join(parts, "; "))
}

func summariseFailures(failed map[string]string) string {
	parts := make([]string, 0, len(failed))
	for _, name := range sortedKeys(failed) {
		parts = append(parts, name+": "+failed[name])
	}
	return fmt.Sprintf("%d cluster(s) kept as last applied: %s", len(failed), joinLimited(parts))
}

func summariseConflicts(conflicts []apply.Conflict) string {
	parts := make([]string, 0, maxListed)
	for i, c := range conflicts {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(conflicts)-maxListed))
			break
		}
		parts = append(parts, c.String())
	}
	return fmt.Sprintf("%d object(s) not written because warren does not own them: %s", len(conflicts), strings.Join(parts, "; "))
}

func countRejected(l *loaded) int {
	files := map[string]bool{}
	for _, c := range l.repo.Clusters {
		files[c.Source.File] = false
	}
	for _, a := range l.admitted {
		delete(files, a.Cluster.Source.File)
	}
	return len(files)
}

func (r *FleetReconciler) event(obj client.Object, eventType, reason, message string) {
	if r.EventRecorder != nil {
		r.EventRecorder.Event(obj, eventType, reason, message)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hostVirtualCluster is the host object of an admitted cluster: its
// defaulted spec, labelled as the cluster's own.
func hostVirtualCluster(a policy.Admission, repo *load.Repository) *v1alpha1.VirtualCluster {
	in := render.InputFor(a, repo)
	vc := &v1alpha1.VirtualCluster{
		TypeMeta: metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.VirtualClusterKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:   in.Cluster.Name,
			Labels: map[string]string{apply.ManagedByLabel: apply.ManagedByValue, apply.ClusterLabel: in.Cluster.Name},
		},
		Spec: in.Cluster.Spec,
	}
	return vc
}

func refOf(o *unstructuredObject) apply.ObjectRef {
	gvk := o.GroupVersionKind()
	return apply.ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: o.GetNamespace(), Name: o.GetName()}
}
