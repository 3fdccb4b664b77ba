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
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	// Leading, with leader election on, says whether this replica still
	// holds the lease; checked before applying, pruning and writing status.
	Leading func(context.Context) error
	// Shard, on a sharded reconciler, is its --watch-label-selector: the
	// cache holds only the Fleets it matches, and stillOurs checks a Fleet
	// still does before it is pruned or finalized. Nil: every Fleet.
	Shard labels.Selector

	// hosts reaches the hosts clusters are placed on; only the local one
	// when nil (see hostsOf).
	hosts *hostRegistry

	renders     renderCache
	inventories inventoryStore
	repos       sync.Map // types.NamespacedName → *source.Repository
	loads       sync.Map // types.NamespacedName → *loaded
}

// loaded is what one revision of a Fleet's repository loaded and admitted to,
// kept so an unchanged revision is not parsed again.
type loaded struct {
	key string
	policy.Evaluation
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
	// The deferred patch also writes a finalizer removed by finalize: a
	// deleted Fleet goes only once that patch lands.
	defer func() {
		if moved := r.movedShard(ctx, fleet, retErr); moved != nil {
			// Another shard reconciles it now: its status stands, and this
			// shard's cache drops the Fleet, so nothing is retried.
			ctrl.LoggerFrom(ctx).Info("left to another shard", "reason", moved.Error())
			retErr = nil
			return
		}
		if err := r.stillLeading(ctx); err != nil {
			// Another replica leads now: its status stands.
			retErr = kerrors.NewAggregate([]error{retErr, err})
			return
		}
		fleet.Status.Shard = r.shardName()
		if v, ok := fleet.GetAnnotations()[v1alpha1.RequestedAtAnnotation]; ok {
			fleet.Status.LastHandledRequestedAt = v
		}
		if retErr == nil || conditions.IsFalse(fleet, meta.ReadyCondition) {
			fleet.Status.ObservedGeneration = fleet.Generation
		}
		conditions.Delete(fleet, meta.ReconcilingCondition)
		statusStart := time.Now()
		defer observePhase(fleet, "status", statusStart)
		if err := patcher.Patch(ctx, fleet, patch.WithOwnedConditions{Conditions: []string{
			meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition, v1alpha1.PruneBlockedCondition,
		}}, patch.WithFieldOwner(apply.FieldManager)); err != nil {
			// Once its finalizer is gone the Fleet may be gone too.
			err = kerrors.FilterOut(err, apierrors.IsNotFound)
			retErr = errors.Join(retErr, err)
		}
		r.Metrics.RecordDuration(ctx, fleet, start)
		r.Metrics.RecordReadiness(ctx, fleet)
		r.Metrics.RecordSuspend(ctx, fleet, fleet.Spec.Suspend)
	}()

	if !fleet.DeletionTimestamp.IsZero() {
		if err := r.stillOurs(ctx, fleet); err != nil {
			return ctrl.Result{}, err
		}
		return r.finalize(ctx, fleet)
	}
	if !controllerutil.ContainsFinalizer(fleet, v1alpha1.FleetFinalizer) {
		controllerutil.AddFinalizer(fleet, v1alpha1.FleetFinalizer)
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
	// Jittered, as Flux does, so Fleets of one interval do not all wake at once.
	after := jitter.JitteredIntervalDuration(fleet.GetRequeueAfter())
	if nextExpiry > 0 && nextExpiry < after {
		// A preview cluster expires before the next poll: come back then.
		after = nextExpiry
	}
	return ctrl.Result{RequeueAfter: after}, nil
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
	hosts := make(map[string]string, len(existing))
	placed := make([]string, 0, len(existing))
	for name, vc := range existing {
		names = append(names, name)
		hosts[name] = v1alpha1.HostOf(vc.Spec)
	}
	sort.Strings(names)
	for _, name := range names {
		placed = append(placed, name+"@"+hosts[name])
	}
	key := snap.Revision + "\x00" + fleet.Spec.Path + "\x00" + fleet.GetDefaultHost() + "\x00" + strings.Join(placed, ",")
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
	// The Fleet's namespace holds its Git credentials: never a cluster's.
	l := &loaded{key: key, Evaluation: policy.Evaluate(repo, problems, policy.Options{
		Existing: names, ReservedNamespaces: []string{fleet.Namespace}, DefaultHost: fleet.GetDefaultHost(), ExistingHosts: hosts,
	})}
	r.loads.Store(fleetKey, l)
	return l, nil
}

// finalize carries out a deleted Fleet's deletion policy (see
// Fleet.DeletesClustersOnDeletion: a suspended Fleet deletes nothing), then
// lets it go. The finalizer is removed in memory; the deferred patch in
// Reconcile writes it.
func (r *FleetReconciler) finalize(ctx context.Context, fleet *v1alpha1.Fleet) (ctrl.Result, error) {
	inventory, err := r.store().load(ctx, fleet)
	if err != nil {
		return ctrl.Result{}, err
	}
	held := inventory != nil && len(inventory.Entries) > 0
	switch {
	case held && fleet.DeletesClustersOnDeletion():
		applier, err := apply.New(r.ApplyClient, apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}, apply.Options{})
		if err != nil {
			return ctrl.Result{}, err
		}
		hosts := r.targets(ctx, fleet, applier, inventoryHosts(inventory, map[string]bool{}))
		keep, err := r.prune(ctx, fleet, hosts, apply.Clusters(inventory), inventory, apply.Entries(nil))
		if err == nil && len(keep) > 0 {
			err = fmt.Errorf("%d object(s) of its clusters are on hosts that do not answer (%s); they are deleted once their host answers",
				len(keep), strings.Join(slices.Sorted(maps.Keys(inventoryHosts(apply.Entries(keep), map[string]bool{}))), ", "))
			err = errors.Join(err, r.store().save(ctx, fleet, apply.Entries(keep)))
		}
		if err != nil {
			conditions.MarkFalse(fleet, meta.ReadyCondition, meta.PruneFailedReason, "deleting the Fleet: %s", err)
			r.event(fleet, corev1.EventTypeWarning, meta.PruneFailedReason, "deleting the Fleet: "+err.Error())
			return ctrl.Result{}, err
		}
	case held:
		r.event(fleet, corev1.EventTypeNormal, "ClustersKept", fmt.Sprintf("Fleet deleted; its %d cluster(s) stay on the host (%s)",
			len(apply.Clusters(inventory)), keptBecause(fleet)))
	}
	// Its inventory goes with it: its finalizer kept it readable until now.
	if err := r.store().release(ctx, fleet); err != nil {
		return ctrl.Result{}, err
	}
	key := types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name}
	r.repos.Delete(key)
	r.loads.Delete(key)
	controllerutil.RemoveFinalizer(fleet, v1alpha1.FleetFinalizer)
	return ctrl.Result{}, nil
}

// keptBecause says why deleting the Fleet keeps its clusters.
func keptBecause(fleet *v1alpha1.Fleet) string {
	switch {
	case fleet.Spec.Suspend:
		return "it is suspended: nothing is applied or pruned"
	case fleet.Spec.DeletionPolicy == v1alpha1.DeletionPolicyOrphan:
		return "spec.deletionPolicy is Orphan"
	default:
		return "spec.prune is false and spec.deletionPolicy is MirrorPrune"
	}
}

// maxListed bounds the problems and conflicts a condition message lists.
const maxListed = 10

func summariseProblems(problems []load.Problem) string {
	return fmt.Sprintf("%d problem(s): %s", len(problems), joinLimited(stringsOf(problems)))
}

func summariseFailures(failed map[string]string) string {
	parts := make([]string, 0, len(failed))
	for _, name := range sortedKeys(failed) {
		parts = append(parts, name+": "+failed[name])
	}
	return fmt.Sprintf("%d cluster(s) kept as last applied: %s", len(failed), joinLimited(parts))
}

func summariseConflicts(conflicts []apply.Conflict) string {
	return fmt.Sprintf("%d object(s) not written because warren does not own them: %s", len(conflicts), joinLimited(stringsOf(conflicts)))
}

// stringsOf is each item as a string.
func stringsOf[T fmt.Stringer](items []T) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.String())
	}
	return out
}

// countRejected is how many cluster files were not admitted.
func countRejected(l *loaded) int {
	files := map[string]bool{}
	for _, c := range l.Repo.Clusters {
		files[c.Source.File] = false
	}
	for _, a := range l.Admitted {
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
			Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue, v1alpha1.ClusterLabel: in.Cluster.Name},
		},
		Spec: in.Cluster.Spec,
	}
	vc.Spec.Host = a.Host
	return vc
}
