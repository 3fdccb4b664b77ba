package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	kuberecorder "k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/reconciler/source"
)

// TenantUserPrefix starts the user name of every tenant client certificate:
// a tenant's kubeconfig authenticates as "tenant:<tenant>", in the groups
// its TenantPolicy lists as Group subjects. So the kubeconfig holds exactly
// the rights the cluster's `access` grants give those groups (or that user
// name, if a grant names it); a policy's User subjects are people, and a
// shared kubeconfig never impersonates one of them.
const TenantUserPrefix = "tenant:"

// TenantIdentity is who a tenant's kubeconfig authenticates as.
func TenantIdentity(policy *v1alpha1.TenantPolicy) kubeconfig.Identity {
	id := kubeconfig.Identity{User: TenantUserPrefix + policy.Spec.Tenant}
	for _, s := range policy.Spec.Subjects {
		if s.Kind == v1alpha1.SubjectGroup {
			id.Groups = append(id.Groups, s.Name)
		}
	}
	return id
}

// KubeconfigReconciler makes one decision: which sealed kubeconfig files a
// Fleet's repository should hold, and commits the difference. For each Fleet
// with spec.kubeconfigs, once the Fleet controller has reconciled a revision,
// it seals a kubeconfig for each Ready cluster that asks for one, deletes the
// files of clusters the Fleet no longer holds, and pushes all of it as one
// commit on the Fleet's branch with the Fleet's credentials. It writes
// nothing when nothing changed. It never renders or applies a cluster, never
// writes anything but sealed files to Git, and never puts credential
// material into a log line, event or condition.
type KubeconfigReconciler struct {
	// Client reads Fleets and VirtualClusters from the manager's cache and
	// writes their status.
	client.Client
	// APIReader reads Secrets from the API server (they are not cached).
	APIReader client.Reader
	// Kube is used for the host Secrets the kubeconfig package keeps and
	// for fetching the sealing certificate through the service proxy.
	Kube          kubernetes.Interface
	EventRecorder kuberecorder.EventRecorder
	// Hosts reaches clusters on remote hosts (their PKI and tenant
	// credentials); only local clusters are published when nil.
	Hosts *hostRegistry
	// CacheDir holds the publisher's own Git cache per Fleet.
	CacheDir string
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	fleets sync.Map // types.NamespacedName → *publishState
}

// publishState is what the publisher keeps per Fleet between reconciles.
// Reconciles of one Fleet never run concurrently, so it needs no lock.
type publishState struct {
	url       string
	auth      *source.Auth
	repo      *source.Repository
	publisher *kubeconfig.Publisher
	// policies of the last commit loaded, so an unchanged tip is not parsed again.
	policiesCommit string
	policies       *load.Repository
}

// outcome is one cluster's result in one reconcile.
type outcome struct {
	vc  *v1alpha1.VirtualCluster
	pub *kubeconfig.Publication
	// reason and message when the cluster has no current file.
	reason, message string
}

// Reconcile publishes one Fleet's kubeconfigs.
func (r *KubeconfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	fleet := &v1alpha1.Fleet{}
	if err := r.Get(ctx, req.NamespacedName, fleet); err != nil {
		if apierrors.IsNotFound(err) {
			r.fleets.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if fleet.Spec.Kubeconfigs == nil && (fleet.Status.Kubeconfigs != nil || conditions.Has(fleet, v1alpha1.KubeconfigsPublishedCondition)) {
		// Publishing was turned off: say nothing about it any more. The
		// files already in Git stay; removing them is the repository
		// owner's decision.
		patcher := patch.NewSerialPatcher(fleet, r.Client)
		fleet.Status.Kubeconfigs = nil
		conditions.Delete(fleet, v1alpha1.KubeconfigsPublishedCondition)
		r.fleets.Delete(req.NamespacedName)
		return ctrl.Result{}, patcher.Patch(ctx, fleet,
			patch.WithOwnedConditions{Conditions: []string{v1alpha1.KubeconfigsPublishedCondition}},
			patch.WithFieldOwner(apply.FieldManager))
	}
	if fleet.Spec.Kubeconfigs == nil || fleet.Spec.Suspend || !fleet.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if fleet.Status.LastAttemptedRevision == "" {
		// The Fleet controller has not reconciled a revision yet; its
		// status update will bring this Fleet back. (Not the applied
		// revision: one failing cluster keeps that still, and the others'
		// kubeconfigs are due all the same.)
		return ctrl.Result{}, nil
	}

	patcher := patch.NewSerialPatcher(fleet, r.Client)
	if fleet.Status.Kubeconfigs == nil {
		fleet.Status.Kubeconfigs = &v1alpha1.KubeconfigPublishingStatus{}
	}
	defer func() {
		if v, ok := fleet.GetAnnotations()[v1alpha1.RequestedAtAnnotation]; ok {
			fleet.Status.Kubeconfigs.LastHandledRequestedAt = v
		}
		if err := patcher.Patch(ctx, fleet,
			patch.WithOwnedConditions{Conditions: []string{v1alpha1.KubeconfigsPublishedCondition}},
			patch.WithFieldOwner(apply.FieldManager)); err != nil && !apierrors.IsNotFound(err) {
			retErr = errors.Join(retErr, err)
		}
	}()

	if err := r.publish(ctx, fleet); err != nil {
		return ctrl.Result{}, err
	}
	return jitter.JitteredRequeueInterval(ctrl.Result{RequeueAfter: fleet.GetRequeueAfter()}), nil
}

// checkSettings refuses settings that cannot work and returns the branch to
// push to (empty: the remote's default branch).
func (r *KubeconfigReconciler) checkSettings(fleet *v1alpha1.Fleet, dir string) (string, error) {
	if ref := fleet.Spec.Ref; ref != nil && (ref.Tag != "" || ref.Commit != "") {
		return "", errors.New("spec.kubeconfigs: kubeconfigs are committed to a branch, but spec.ref names a tag or commit")
	}
	if !filepath.IsLocal(filepath.FromSlash(dir)) || dir == "." {
		return "", fmt.Errorf("spec.kubeconfigs.path %q must be a folder inside the repository", dir)
	}
	root := path.Clean(strings.TrimPrefix(fleet.Spec.Path, "./"))
	for _, d := range []string{load.ClustersDir, load.PoliciesDir, load.TemplatesDir} {
		reserved := path.Join(root, d)
		if dir == reserved || strings.HasPrefix(dir, reserved+"/") || strings.HasPrefix(reserved, dir+"/") {
			return "", fmt.Errorf("spec.kubeconfigs.path %q overlaps the fleet's %s/ folder, which holds definitions warren loads", dir, d)
		}
	}
	if fleet.Spec.Ref != nil {
		return fleet.Spec.Ref.Branch, nil
	}
	return "", nil
}

// stateFor returns the Fleet's publishing state, opening its Git cache (a
// folder of its own, beside the Fleet controller's) on first use or when
// the URL or credentials changed.
func (r *KubeconfigReconciler) stateFor(ctx context.Context, fleet *v1alpha1.Fleet) (*publishState, error) {
	key := types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name}
	auth, err := fleetAuth(ctx, r.APIReader, fleet)
	if err != nil {
		return nil, err
	}
	if v, ok := r.fleets.Load(key); ok {
		s := v.(*publishState)
		if s.url == fleet.Spec.URL && reflect.DeepEqual(s.auth, auth) {
			return s, nil
		}
	}
	repo, err := source.Open(source.Options{
		URL:      fleet.Spec.URL,
		Auth:     auth,
		CacheDir: filepath.Join(r.CacheDir, fleet.Namespace, fleet.Name, "kubeconfigs"),
	})
	if err != nil {
		return nil, err
	}
	s := &publishState{url: fleet.Spec.URL, auth: auth, repo: repo, publisher: &kubeconfig.Publisher{Client: r.Kube, Now: r.Now}}
	r.fleets.Store(key, s)
	return s, nil
}

// policiesAt loads the fleet at the snapshot for its tenant policies. Its
// problems are the Fleet controller's to report; a policy that failed to
// load is simply absent.
func (s *publishState) policiesAt(snap *source.Snapshot, fleetPath string) (*load.Repository, error) {
	if s.policies != nil && s.policiesCommit == snap.Commit {
		return s.policies, nil
	}
	root, err := snap.Join(fleetPath)
	if err != nil {
		return nil, fmt.Errorf("spec.path %q: %w", fleetPath, err)
	}
	repo, _, err := load.Dir(root)
	if err != nil {
		return nil, err
	}
	s.policies, s.policiesCommit = repo, snap.Commit
	return repo, nil
}

func certificateSource(fleet *v1alpha1.Fleet) kubeconfig.CertificateSource {
	sealing := fleet.Spec.Kubeconfigs.Sealing
	ref := func(r *v1alpha1.SealingCertificateRef) *kubeconfig.ObjectKeyRef {
		if r == nil {
			return nil
		}
		ns := r.Namespace
		if ns == "" {
			ns = fleet.Namespace
		}
		return &kubeconfig.ObjectKeyRef{Namespace: ns, Name: r.Name, Key: r.Key}
	}
	src := kubeconfig.CertificateSource{Secret: ref(sealing.Secret), ConfigMap: ref(sealing.ConfigMap)}
	if c := sealing.Controller; c != nil {
		ctl := &kubeconfig.ControllerRef{Namespace: c.Namespace, Service: c.Service, Port: c.Port}
		if ctl.Namespace == "" {
			ctl.Namespace = "kube-system"
		}
		if ctl.Service == "" {
			ctl.Service = "sealed-secrets-controller"
		}
		src.Controller = ctl
	}
	return src
}

// clusterFor gathers what the kubeconfig package needs about one cluster:
// its PKI (made once by the Fleet controller), the identity its tenant
// policy grants, its endpoint and where the tenant reads the Secret.
func (r *KubeconfigReconciler) clusterFor(ctx context.Context, vc *v1alpha1.VirtualCluster, policies *load.Repository, lifetime time.Duration) (kubeconfig.Cluster, error) {
	policy, ok := policies.PolicyFor(vc.Spec.Tenant)
	if !ok {
		return kubeconfig.Cluster{}, fmt.Errorf("no TenantPolicy for tenant %q in the repository", vc.Spec.Tenant)
	}
	names := render.NamesFor(vc)
	reader, host, owners := r.APIReader, kubernetes.Interface(nil), []metav1.OwnerReference{{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.VirtualClusterKind,
		Name: vc.Name, UID: vc.UID, BlockOwnerDeletion: ptr.To(true),
	}}
	if name := v1alpha1.HostOf(vc.Spec); name != v1alpha1.LocalHost && r.Hosts != nil {
		// On a remote host no VirtualCluster owns the credentials: its
		// namespace's deletion removes them.
		conn, _, err := r.Hosts.connect(ctx, vc.Labels[v1alpha1.FleetNamespaceLabel], name)
		if err != nil {
			return kubeconfig.Cluster{}, err
		}
		reader, host, owners = conn.client, conn.kube, nil
	}
	var secret corev1.Secret
	if err := reader.Get(ctx, client.ObjectKey{Namespace: names.Namespace, Name: names.PKISecret}, &secret); err != nil {
		return kubeconfig.Cluster{}, fmt.Errorf("reading PKI Secret %s/%s: %w", names.Namespace, names.PKISecret, err)
	}
	if secret.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue || secret.Labels[v1alpha1.ClusterLabel] != vc.Name {
		return kubeconfig.Cluster{}, fmt.Errorf("PKI Secret %s/%s was not made by warren for cluster %s: not using it", names.Namespace, names.PKISecret, vc.Name)
	}
	bundle, err := pki.FromSecretData(secret.Data)
	if err != nil {
		return kubeconfig.Cluster{}, fmt.Errorf("PKI Secret %s/%s: %w", names.Namespace, names.PKISecret, err)
	}
	return kubeconfig.Cluster{
		Name:          vc.Name,
		HostNamespace: names.Namespace,
		PKI:           bundle,
		Identity:      TenantIdentity(policy.Object),
		Lifetime:      lifetime,
		Server:        vc.Status.Endpoint,
		Target:        kubeconfig.Target{Namespace: vc.Spec.Kubeconfig.Namespace, Name: vc.Spec.Kubeconfig.Name},
		Labels:        map[string]string{v1alpha1.ClusterLabel: vc.Name},
		Owners:        owners,
		Host:          host,
	}, nil
}

// pushFailed records a push the remote did not accept: the Fleet lists what
// waits, with the remote's reason, and the error brings a retry with backoff.
// The changes are made again from scratch on the next attempt.
func (r *KubeconfigReconciler) pushFailed(ctx context.Context, s *publishScope, err error) error {
	fleet, outcomes, changes := s.fleet, s.outcomes, s.changes
	status := fleet.Status.Kubeconfigs
	status.PendingPushes = nil
	for p := range changes.Write {
		status.PendingPushes = append(status.PendingPushes, p)
	}
	for _, p := range changes.Remove {
		status.PendingPushes = append(status.PendingPushes, p+" (delete)")
	}
	sort.Strings(status.PendingPushes)
	reason := v1alpha1.PushPendingReason
	var rejected *source.PushRejectedError
	if errors.As(err, &rejected) {
		reason = v1alpha1.PushRejectedReason
		status.LastPushError = rejected.Reason
	} else {
		status.LastPushError = err.Error()
	}
	conditions.MarkFalse(fleet, v1alpha1.KubeconfigsPublishedCondition, v1alpha1.PushFailedReason, "%d change(s) not pushed: %s", len(status.PendingPushes), status.LastPushError)
	r.event(fleet, corev1.EventTypeWarning, v1alpha1.PushFailedReason, fmt.Sprintf("kubeconfigs not pushed, will retry: %s", status.LastPushError))
	for _, o := range outcomes {
		if o.pub == nil || o.pub.Change == kubeconfig.Unchanged {
			continue
		}
		vc := o.vc
		if perr := r.patchCluster(ctx, vc.Name, func(vc *v1alpha1.VirtualCluster) {
			conditions.MarkFalse(vc, v1alpha1.KubeconfigPublishedCondition, reason, "%s (%s) not pushed yet: %s", o.pub.Path, o.pub.Reason(), status.LastPushError)
		}); perr != nil {
			ctrl.LoggerFrom(ctx).Error(perr, "updating VirtualCluster status", "cluster", vc.Name)
		}
	}
	return fmt.Errorf("pushing kubeconfigs: %w", err)
}

// reportCluster sets a cluster's KubeconfigPublished condition and
// status.kubeconfig: commit is this reconcile's commit (empty when none was
// made), tip the commit the unchanged files were read at.
func (r *KubeconfigReconciler) reportCluster(ctx context.Context, o *outcome, dir, commit, tip string) error {
	return r.patchCluster(ctx, o.vc.Name, func(vc *v1alpha1.VirtualCluster) {
		if o.pub == nil {
			if o.reason == v1alpha1.WaitingForClusterReason && conditions.Has(vc, v1alpha1.KubeconfigPublishedCondition) {
				return // a published file stays while the cluster is paused or restarting
			}
			conditions.MarkFalse(vc, v1alpha1.KubeconfigPublishedCondition, o.reason, "%s", o.message)
			return
		}
		p := o.pub
		vc.Status.HostObjects.TenantKubeconfigSecret = vc.Spec.Kubeconfig.Namespace + "/" + vc.Spec.Kubeconfig.Name
		if p.Change != kubeconfig.Unchanged {
			vc.Status.Kubeconfig = &v1alpha1.PublishedKubeconfig{Path: p.Path, Commit: commit}
			conditions.MarkTrue(vc, v1alpha1.KubeconfigPublishedCondition, v1alpha1.PublishedReason, "%s published in commit %s (%s)", p.Path, commit, p.Reason())
			r.event(vc, corev1.EventTypeNormal, v1alpha1.KubeconfigPublishedCondition, fmt.Sprintf("%s published in commit %s (%s)", p.Path, shortSHA(commit), p.Reason()))
			return
		}
		if vc.Status.Kubeconfig == nil || vc.Status.Kubeconfig.Path != p.Path || vc.Status.Kubeconfig.Commit == "" {
			// Published before this reconciler remembered it: the file is
			// current at the tip it was read from.
			vc.Status.Kubeconfig = &v1alpha1.PublishedKubeconfig{Path: p.Path, Commit: tip}
		}
		if !conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition) {
			conditions.MarkTrue(vc, v1alpha1.KubeconfigPublishedCondition, v1alpha1.PublishedReason, "%s published in commit %s", p.Path, vc.Status.Kubeconfig.Commit)
		}
	})
}

// patchCluster changes a VirtualCluster's status and patches it only when
// something changed.
func (r *KubeconfigReconciler) patchCluster(ctx context.Context, name string, change func(*v1alpha1.VirtualCluster)) error {
	return clusterStatusWriter{client: r.Client}.write(ctx, name, func(vc *v1alpha1.VirtualCluster) error {
		change(vc)
		return nil
	})
}

// filesIn lists the repository paths of the regular files directly in dir.
func filesIn(snap *source.Snapshot, dir string) ([]string, error) {
	abs, err := snap.Join(dir)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// maxKubeconfigFile bounds a kubeconfig file read from the checkout.
const maxKubeconfigFile = 1 << 20

// readFile returns a file of the checkout, nil when it does not exist.
func readFile(snap *source.Snapshot, rel string) ([]byte, error) {
	abs, err := snap.Join(rel)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(abs)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKubeconfigFile {
		return nil, fmt.Errorf("%s is not a regular file under %d bytes", rel, maxKubeconfigFile)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	return b, nil
}

func (r *KubeconfigReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *KubeconfigReconciler) event(obj client.Object, eventType, reason, message string) {
	if r.EventRecorder != nil {
		r.EventRecorder.Event(obj, eventType, reason, message)
	}
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
