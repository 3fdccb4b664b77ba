package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/templates"
)

type unstructuredObject = unstructured.Unstructured

// renderCache keeps each cluster's rendered, owned objects keyed by a hash of
// everything rendering reads, so an unchanged cluster is never rendered twice.
type renderCache struct {
	mu      sync.Mutex
	entries map[string]renderEntry // cluster name → entry
}

type renderEntry struct {
	key     string
	objects []*unstructured.Unstructured
}

// get returns the cluster's objects, each owned by its VirtualCluster.
func (c *renderCache) get(a policy.Admission, repo *load.Repository, opts render.Options, version string, uid types.UID) ([]*unstructured.Unstructured, error) {
	in := render.InputFor(a, repo)
	key, err := renderKey(in, a, opts, version, uid)
	if err != nil {
		return nil, err
	}
	name := in.Cluster.Name
	c.mu.Lock()
	if e, ok := c.entries[name]; ok && e.key == key {
		c.mu.Unlock()
		return e.objects, nil
	}
	c.mu.Unlock()

	out, err := render.Cluster(in, opts)
	if err != nil {
		return nil, err
	}
	owned := ownedBy(out.Objects, name, uid)
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]renderEntry{}
	}
	c.entries[name] = renderEntry{key: key, objects: owned}
	c.mu.Unlock()
	return owned, nil
}

func renderKey(in render.Input, a policy.Admission, opts render.Options, version string, uid types.UID) (string, error) {
	h := sha256.New()
	for _, v := range []any{in.Cluster, a.Policy.Object, opts, version, uid, in.PodSecurity, in.NetworkIsolation} {
		b, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("hashing render inputs: %w", err)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	paths := make([]string, 0, len(in.Overlay))
	for p := range in.Overlay {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%x\x00", p, sha256.Sum256(in.Overlay[p]))
	}
	h.Write([]byte(templatesDigest()))
	return hex.EncodeToString(h.Sum(nil)), nil
}

var templatesDigest = sync.OnceValue(func() string {
	h := sha256.New()
	_ = fs.WalkDir(templates.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(templates.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%x\x00", path, sha256.Sum256(data))
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
})

// ownedBy returns copies of objects owned by the cluster's VirtualCluster, so
// deleting it deletes everything it holds on the host.
func ownedBy(objects []*unstructured.Unstructured, cluster string, uid types.UID) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objects))
	for _, o := range objects {
		o = o.DeepCopy()
		o.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion:         v1alpha1.GroupVersion.String(),
			Kind:               v1alpha1.VirtualClusterKind,
			Name:               cluster,
			UID:                uid,
			BlockOwnerDeletion: ptr.To(true),
		}})
		out = append(out, o)
	}
	return out
}

func toUnstructured(vcs []*v1alpha1.VirtualCluster) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(vcs))
	for _, vc := range vcs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(vc)
		if err != nil {
			return nil, fmt.Errorf("VirtualCluster %s: %w", vc.Name, err)
		}
		u := &unstructured.Unstructured{Object: m}
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		out = append(out, u)
	}
	return out, nil
}

// pkiSecrets lists, metadata only, the Secrets that carry warren's cluster
// labels, as "namespace/name".
func (r *FleetReconciler) pkiSecrets(ctx context.Context) (map[string]bool, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := r.APIReader.List(ctx, list, client.MatchingLabels{apply.ManagedByLabel: apply.ManagedByValue}, client.HasLabels{apply.ClusterLabel}); err != nil {
		return nil, fmt.Errorf("listing PKI Secrets: %w", err)
	}
	out := make(map[string]bool, len(list.Items))
	for _, s := range list.Items {
		out[s.Namespace+"/"+s.Name] = true
	}
	return out, nil
}

// ensurePKI creates the cluster's PKI Secret if it does not exist yet. It
// never replaces one: every credential of the cluster hangs on those keys.
func (r *FleetReconciler) ensurePKI(ctx context.Context, a policy.Admission, repo *load.Repository) error {
	in := render.InputFor(a, repo)
	names := render.NamesFor(in.Cluster)
	var existing corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: names.Namespace, Name: names.PKISecret}, &existing)
	if err == nil || !apierrors.IsNotFound(err) {
		return client.IgnoreNotFound(err)
	}
	bundle, err := pki.Generate(in.Cluster.Name)
	if err != nil {
		return err
	}
	var vc v1alpha1.VirtualCluster
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: in.Cluster.Name}, &vc); err != nil {
		return fmt.Errorf("reading VirtualCluster %s: %w", in.Cluster.Name, err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      names.PKISecret,
			Namespace: names.Namespace,
			// The cluster label, not the Fleet's: the Secret is made here,
			// not applied, and must never be pruned as an unrendered object.
			Labels: map[string]string{apply.ManagedByLabel: apply.ManagedByValue, apply.ClusterLabel: in.Cluster.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.VirtualClusterKind,
				Name: vc.Name, UID: vc.UID, BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Type: corev1.SecretTypeOpaque,
		Data: bundle.SecretData(),
	}
	if err := r.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating PKI Secret %s/%s: %w", names.Namespace, names.PKISecret, err)
	}
	return nil
}

// reportClusters writes each cluster's Admitted and Applied conditions and
// where it came from, patching only what changed.
func (r *FleetReconciler) reportClusters(ctx context.Context, p *plan, conflicts []apply.Conflict) error {
	conflictsOf := map[string][]string{}
	for _, c := range conflicts {
		name := clusterOfConflict(c, p)
		conflictsOf[name] = append(conflictsOf[name], c.String())
	}
	var errs []error
	for name, a := range p.desired {
		in := render.InputFor(a, p.loaded.repo)
		names := render.NamesFor(in.Cluster)
		errs = append(errs, r.patchClusterStatus(ctx, name, func(vc *v1alpha1.VirtualCluster) {
			conditions.MarkTrue(vc, v1alpha1.AdmittedCondition, "Admitted", "admitted by TenantPolicy %s", a.Policy.Object.Name)
			if cs := conflictsOf[name]; len(cs) > 0 {
				conditions.MarkFalse(vc, v1alpha1.AppliedCondition, ReasonConflict, "not written because warren does not own them: %s", joinLimited(cs))
			} else {
				conditions.MarkTrue(vc, v1alpha1.AppliedCondition, "Applied", "applied from %s", p.revision)
			}
			vc.Status.ObservedGeneration = vc.Generation
			vc.Status.SourceRevision = p.revision
			vc.Status.SourcePath = a.Cluster.Source.File
			vc.Status.HostNamespace = names.Namespace
			vc.Status.HostObjects.StatefulSet = names.StatefulSet
			vc.Status.HostObjects.Service = names.Service
			vc.Status.HostObjects.PKISecret = names.PKISecret
			vc.Status.HostObjects.KubeconfigSecret = names.KubeconfigSecret
		}))
	}
	for name, why := range p.kept {
		if _, ok := p.existing[name]; !ok {
			continue
		}
		errs = append(errs, r.patchClusterStatus(ctx, name, func(vc *v1alpha1.VirtualCluster) {
			conditions.MarkFalse(vc, v1alpha1.AdmittedCondition, "NotAdmitted", "kept as last applied from %s: %s", vc.Status.SourceRevision, why)
		}))
	}
	return errorsJoin(errs)
}

// patchClusterStatus applies change to a VirtualCluster's status and patches
// it only when something changed, retrying on conflict with other writers.
func (r *FleetReconciler) patchClusterStatus(ctx context.Context, name string, change func(*v1alpha1.VirtualCluster)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var vc v1alpha1.VirtualCluster
		if err := r.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
			if apierrors.IsNotFound(err) {
				// Just created: the cache has not seen it yet.
				if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, &vc); err != nil {
					return client.IgnoreNotFound(err)
				}
			} else {
				return err
			}
		}
		before := vc.DeepCopy()
		change(&vc)
		if equality.Semantic.DeepEqual(before.Status, vc.Status) {
			return nil
		}
		if cond := conditions.Get(&vc, v1alpha1.AdmittedCondition); cond != nil && cond.Status == metav1.ConditionFalse {
			if old := conditions.Get(before, v1alpha1.AdmittedCondition); old == nil || old.Status != metav1.ConditionFalse {
				r.event(&vc, corev1.EventTypeWarning, "NotAdmitted", cond.Message)
			}
		}
		if cond := conditions.Get(&vc, v1alpha1.AppliedCondition); cond != nil && cond.Reason == ReasonConflict {
			if old := conditions.Get(before, v1alpha1.AppliedCondition); old == nil || old.Reason != ReasonConflict {
				r.event(&vc, corev1.EventTypeWarning, ReasonConflict, cond.Message)
			}
		}
		return r.Status().Patch(ctx, &vc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	})
}

func clusterOfConflict(c apply.Conflict, p *plan) string {
	if c.Object.Kind == v1alpha1.VirtualClusterKind {
		return c.Object.Name
	}
	for name, a := range p.desired {
		ns := render.NamesFor(render.InputFor(a, p.loaded.repo).Cluster).Namespace
		if c.Object.Namespace == ns || (c.Object.Kind == "Namespace" && c.Object.Name == ns) {
			return name
		}
	}
	return ""
}

func joinLimited(items []string) string {
	if len(items) > maxListed {
		items = append(items[:maxListed:maxListed], fmt.Sprintf("and %d more", len(items)-maxListed))
	}
	out := ""
	for i, s := range items {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}

func errorsJoin(errs []error) error {
	var nonNil []error
	for _, err := range errs {
		if err != nil {
			nonNil = append(nonNil, err)
		}
	}
	if len(nonNil) == 0 {
		return nil
	}
	return fmt.Errorf("%d VirtualCluster status update(s) failed, first: %w", len(nonNil), nonNil[0])
}
