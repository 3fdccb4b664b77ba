package controller

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/source"
)

// publishScope is one publish of one Fleet's kubeconfigs. Each field says
// which phase sets it; a phase reads only what the phases before it set.
type publishScope struct {
	fleet *v1alpha1.Fleet
	// dir is the folder the files go in; branch the branch they are pushed
	// to (empty: the remote's default). Set by settingsPhase; sourcePhase
	// makes branch the one it fetched.
	dir, branch string
	// state is the Fleet's publishing state, snap the branch's tip,
	// policies the fleet's TenantPolicies there, files the files in dir
	// there, clusters the Fleet's VirtualClusters by name. Set by
	// sourcePhase.
	state    *publishState
	snap     *source.Snapshot
	policies *load.Repository
	files    []string
	clusters []v1alpha1.VirtualCluster
	// sealingErr says why nothing can be sealed now (nil: it can). Set by
	// sealPhase.
	sealingErr error
	// outcomes are the clusters' results, changes the files to write and
	// remove. Set by filesPhase.
	outcomes []*outcome
	changes  kubeconfig.Changes
	// commit is the commit the written files are in (empty: none was
	// made). Set by pushPhase.
	commit string
	// published and waiting count the clusters by outcome, failed says
	// which failed and why. Set by reportPhase.
	published, waiting int
	failed             []string
}

// publishPhase is one step of a publish. An error it returns ends the
// publish; a reasonError also says what the KubeconfigsPublished condition
// says (without one, the phase has said it).
type publishPhase func(ctx context.Context, s *publishScope) error

// publishPhases are the life of one publish, in order.
func (r *KubeconfigReconciler) publishPhases() []publishPhase {
	return []publishPhase{r.settingsPhase, r.sourcePhase, r.sealPhase, r.filesPhase, r.pushPhase, r.reportPhase}
}

// publish runs the phases over one Fleet, then summarises them in its
// KubeconfigsPublished condition.
func (r *KubeconfigReconciler) publish(ctx context.Context, fleet *v1alpha1.Fleet) error {
	s := &publishScope{fleet: fleet}
	for _, phase := range r.publishPhases() {
		if err := phase(ctx, s); err != nil {
			return summarisePublishFailure(s, err)
		}
	}
	return summarisePublish(s)
}

// settingsPhase refuses settings that cannot work: only a change to the
// Fleet can help, so the error is terminal (no retries until then).
func (r *KubeconfigReconciler) settingsPhase(_ context.Context, s *publishScope) (err error) {
	s.dir = path.Clean(s.fleet.Spec.Kubeconfigs.KubeconfigPath())
	if s.branch, err = r.checkSettings(s.fleet, s.dir); err != nil {
		return failed(v1alpha1.InvalidConfigurationReason, reconcile.TerminalError(err))
	}
	return nil
}

// sourcePhase fetches the branch and reads what publishing needs from it
// (the policies, the files already there), and the Fleet's clusters.
func (r *KubeconfigReconciler) sourcePhase(ctx context.Context, s *publishScope) (err error) {
	if s.state, err = r.stateFor(ctx, s.fleet); err != nil {
		return failed(v1alpha1.GitOperationFailedReason, err)
	}
	if s.snap, err = s.state.repo.Fetch(ctx, source.Ref{Branch: s.branch}); err != nil {
		return failed(v1alpha1.GitOperationFailedReason, err)
	}
	s.branch, _, _ = strings.Cut(s.snap.Revision, "@")
	if s.policies, err = s.state.policiesAt(s.snap, s.fleet.Spec.Path); err != nil {
		return failed(v1alpha1.LoadFailedReason, err)
	}
	if s.files, err = filesIn(s.snap, s.dir); err != nil {
		return failed(v1alpha1.GitOperationFailedReason, err)
	}
	var list v1alpha1.VirtualClusterList
	owner := apply.Owner{Namespace: s.fleet.Namespace, Name: s.fleet.Name}
	if err := r.List(ctx, &list, client.MatchingLabels(owner.Labels())); err != nil {
		return fmt.Errorf("listing VirtualClusters: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	s.clusters = list.Items
	return nil
}

// sealPhase fetches the sealing certificate. Without one nothing is sealed
// (never a plaintext fallback), but removals still go ahead.
func (r *KubeconfigReconciler) sealPhase(ctx context.Context, s *publishScope) error {
	sealingKey, err := kubeconfig.FetchSealingKey(ctx, r.Kube, certificateSource(s.fleet), r.now())
	if err != nil {
		s.sealingErr = err
		return nil
	}
	hashKey, err := kubeconfig.EnsureHashKey(ctx, r.Kube, s.fleet.Namespace, s.fleet.Name+"-kubeconfig-hash")
	if err != nil {
		return failed(v1alpha1.PublishFailedReason, err)
	}
	s.state.publisher.SealingKey, s.state.publisher.HashKey = sealingKey, hashKey
	return nil
}

// filesPhase decides each cluster's file, and which files go.
func (r *KubeconfigReconciler) filesPhase(ctx context.Context, s *publishScope) error {
	keep := map[string]bool{}
	var pubs []kubeconfig.Publication
	for i := range s.clusters {
		vc := &s.clusters[i]
		if !vc.DeletionTimestamp.IsZero() || vc.Spec.Kubeconfig == nil {
			s.state.publisher.Forget(vc.Name)
			continue
		}
		keep[vc.Name] = true
		o := r.publishCluster(ctx, s, vc)
		s.outcomes = append(s.outcomes, o)
		if o.pub != nil {
			pubs = append(pubs, *o.pub)
		}
	}
	stale := kubeconfig.StaleFiles(s.dir, s.files, keep)
	for _, f := range stale {
		s.state.publisher.Forget(strings.TrimSuffix(path.Base(f), ".yaml"))
	}
	s.changes = kubeconfig.Collect(pubs, stale)
	return nil
}

// publishCluster is one cluster's file, or why it has none.
func (r *KubeconfigReconciler) publishCluster(ctx context.Context, s *publishScope, vc *v1alpha1.VirtualCluster) *outcome {
	o := &outcome{vc: vc}
	switch {
	case !conditions.IsReady(vc) || vc.Status.Endpoint == "":
		o.reason, o.message = v1alpha1.WaitingForClusterReason, "waiting for the control plane to be Ready and its endpoint known"
		return o
	case s.sealingErr != nil:
		o.reason, o.message = v1alpha1.SealingUnavailableReason, s.sealingErr.Error()
		return o
	}
	pub, err := r.sealedFile(ctx, s, vc)
	if err != nil {
		o.reason, o.message = v1alpha1.PublishFailedReason, err.Error()
		return o
	}
	o.pub = &pub
	return o
}

// sealedFile issues (or keeps) a cluster's credentials and seals its file.
func (r *KubeconfigReconciler) sealedFile(ctx context.Context, s *publishScope, vc *v1alpha1.VirtualCluster) (kubeconfig.Publication, error) {
	cluster, err := r.clusterFor(ctx, vc, s.policies, s.fleet.Spec.Kubeconfigs.Lifetime())
	if err != nil {
		return kubeconfig.Publication{}, err
	}
	previous, err := readFile(s.snap, kubeconfig.FilePath(s.dir, vc.Name))
	if err != nil {
		return kubeconfig.Publication{}, err
	}
	return s.state.publisher.Publish(ctx, s.dir, cluster, previous)
}

// pushPhase commits the changes, if any, on the branch.
func (r *KubeconfigReconciler) pushPhase(ctx context.Context, s *publishScope) error {
	status := s.fleet.Status.Kubeconfigs
	if !s.changes.Empty() {
		author := s.fleet.Spec.Kubeconfigs.CommitAuthor()
		res, err := s.state.repo.Push(ctx, source.Commit{
			Branch:  s.branch,
			Author:  source.Signature{Name: author.Name, Email: author.Email},
			Message: s.changes.Message,
			Write:   s.changes.Write,
			Delete:  s.changes.Remove,
		})
		if err != nil {
			return r.pushFailed(ctx, s, err)
		}
		s.commit = res.Commit
		if res.Unchanged {
			s.commit = strings.TrimPrefix(res.Revision, s.branch+"@sha1:")
		} else {
			status.LastCommit = res.Commit
			subject, _, _ := strings.Cut(s.changes.Message, "\n")
			ctrl.LoggerFrom(ctx).Info("kubeconfigs pushed", "commit", res.Commit, "branch", s.branch, "attempts", res.Attempts, "written", len(s.changes.Write), "removed", len(s.changes.Remove))
			r.event(s.fleet, corev1.EventTypeNormal, v1alpha1.PublishedReason, fmt.Sprintf("commit %s on %s: %s", shortSHA(res.Commit), s.branch, subject))
		}
	}
	status.PendingPushes, status.LastPushError = nil, ""
	return nil
}

// reportPhase writes each cluster's KubeconfigPublished condition and
// counts the outcomes.
func (r *KubeconfigReconciler) reportPhase(ctx context.Context, s *publishScope) error {
	s.failed = []string{}
	for _, o := range s.outcomes {
		if err := r.reportCluster(ctx, o, s.dir, s.commit, s.snap.Commit); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "updating VirtualCluster status", "cluster", o.vc.Name)
		}
		switch {
		case o.pub != nil:
			s.published++
		case o.reason == v1alpha1.WaitingForClusterReason:
			s.waiting++
		default:
			s.failed = append(s.failed, fmt.Sprintf("%s: %s", o.vc.Name, o.message))
		}
	}
	return nil
}

// summarisePublishFailure sets the KubeconfigsPublished condition from the
// error that ended the phases, when it carries a reason.
func summarisePublishFailure(s *publishScope, err error) error {
	var re *reasonError
	if errors.As(err, &re) {
		conditions.MarkFalse(s.fleet, v1alpha1.KubeconfigsPublishedCondition, re.reason, "%s", re.message())
	}
	return err
}

// summarisePublish sets the KubeconfigsPublished condition from a publish
// that ran to the end.
func summarisePublish(s *publishScope) error {
	switch {
	case s.sealingErr != nil:
		// Nothing is sealed until a valid certificate is back.
		conditions.MarkFalse(s.fleet, v1alpha1.KubeconfigsPublishedCondition, v1alpha1.SealingUnavailableReason, "%s", s.sealingErr)
		if len(s.failed) > 0 {
			return s.sealingErr
		}
	case len(s.failed) > 0:
		conditions.MarkFalse(s.fleet, v1alpha1.KubeconfigsPublishedCondition, v1alpha1.SomeNotPublishedReason, "%d of %d kubeconfig(s) not published: %s", len(s.failed), len(s.outcomes), joinLimited(s.failed))
		return errors.New("some kubeconfigs were not published: " + joinLimited(s.failed))
	default:
		conditions.MarkTrue(s.fleet, v1alpha1.KubeconfigsPublishedCondition, v1alpha1.PublishedReason, "%d kubeconfig(s) current in %s on %s, %d cluster(s) not Ready yet", s.published, s.dir, s.branch, s.waiting)
	}
	return nil
}
