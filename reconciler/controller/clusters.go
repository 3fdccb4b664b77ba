package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/templates"
)

// renderCache keeps, for each cluster, a hash of everything rendering reads
// and its rendered objects' names and digests (apply.Object.Known), not the
// objects themselves: an unchanged cluster is neither rendered nor held in
// memory again. The applier asks for it to be rendered again only when one
// of its objects is not on the host as warren last applied it.
type renderCache struct {
	mu      sync.Mutex
	entries map[string]renderEntry // cluster name → entry
}

type renderEntry struct {
	key     string
	objects []apply.Object // each Known: names and digests only
	// pki is the PKI Secret the cluster was rendered with: the CAs it has,
	// put back as they were if someone deletes the Secret.
	pki *unstructured.Unstructured
}

// pkiOf is the PKI Secret a cached render of the cluster used, if any.
func (c *renderCache) pkiOf(name string) *unstructured.Unstructured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[name].pki
}

// current reports whether the cluster's cached render is still what
// rendering it now would give.
func (c *renderCache) current(a policy.Admission, repo *load.Repository, opts render.Options, version string, uid types.UID) bool {
	in := render.InputFor(a, repo)
	key, err := renderKey(in, a, opts, version, uid)
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[in.Cluster.Name]
	return ok && e.key == key
}

// forget drops the cluster's cached render.
func (c *renderCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, name)
}

// get returns the cluster's objects, each owned by its VirtualCluster, with
// its PKI Secret among them, prepared for owner's applier: when the cached
// render is current, by their names and digests alone; else rendered anew
// with pki (which must then be given).
func (c *renderCache) get(a policy.Admission, repo *load.Repository, opts render.Options, version string, uid types.UID, pki *unstructured.Unstructured, owner apply.Owner) ([]apply.Object, error) {
	in := render.InputFor(a, repo)
	key, err := renderKey(in, a, opts, version, uid)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if e, ok := c.entries[in.Cluster.Name]; ok && e.key == key {
		c.mu.Unlock()
		return e.objects, nil
	}
	c.mu.Unlock()
	return c.render(in, key, opts, uid, pki, owner)
}

func (c *renderCache) render(in render.Input, key string, opts render.Options, uid types.UID, pki *unstructured.Unstructured, owner apply.Owner) ([]apply.Object, error) {
	name := in.Cluster.Name
	if pki == nil {
		return nil, fmt.Errorf("cluster %s: its PKI Secret was not read before rendering; retrying", name)
	}
	out, err := render.Cluster(in, opts)
	if err != nil {
		return nil, err
	}
	prepared, err := apply.Prepare(owner, ownedBy(append(out.Objects, pki), name, uid))
	if err != nil {
		return nil, err
	}
	known := make([]apply.Object, len(prepared))
	for i, o := range prepared {
		known[i] = o.Known()
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]renderEntry{}
	}
	c.entries[name] = renderEntry{key: key, objects: known, pki: pki.DeepCopy()}
	c.mu.Unlock()
	return prepared, nil
}

// fleetOwner is the Fleet as the owner of what it applies.
func fleetOwner(fleet *v1alpha1.Fleet) apply.Owner {
	return apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}
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

// ownedBy makes objects, in place, owned by the cluster's VirtualCluster,
// so deleting it deletes everything it holds on the host. Without a uid (a
// cluster on a remote host, where its VirtualCluster does not exist) they
// have no owner: the inventory alone prunes them.
func ownedBy(objects []*unstructured.Unstructured, cluster string, uid types.UID) []*unstructured.Unstructured {
	if uid == "" {
		return objects
	}
	for _, o := range objects {
		o.SetOwnerReferences([]metav1.OwnerReference{{
			APIVersion:         v1alpha1.GroupVersion.String(),
			Kind:               v1alpha1.VirtualClusterKind,
			Name:               cluster,
			UID:                uid,
			BlockOwnerDeletion: ptr.To(true),
		}})
	}
	return objects
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

// reportClusters writes each cluster's Admitted and Applied conditions and
// where it came from, patching only what changed.
func (r *FleetReconciler) reportClusters(ctx context.Context, p *fleetScope) error {
	conflictsOf := map[string][]string{}
	for _, c := range p.conflicts {
		name := clusterOfConflict(c, p)
		conflictsOf[name] = append(conflictsOf[name], c.String())
	}
	// One status write per cluster, several at once: at thousands of
	// clusters, one after another is what a cold start waits on.
	type write struct {
		name   string
		change func(*v1alpha1.VirtualCluster)
	}
	var writes []write
	for name, a := range p.desired {
		in := render.InputFor(a, p.loaded.Repo)
		names := render.NamesFor(in.Cluster)
		writes = append(writes, write{name, func(vc *v1alpha1.VirtualCluster) {
			// The revision a cluster came from moves only when something of
			// it changed: a commit elsewhere in the repository (warren's own
			// kubeconfigs among them) writes nothing to it.
			revision := vc.Status.SourceRevision
			if revision == "" || p.changed[name] || vc.Status.SourcePath != a.Cluster.Source.File {
				revision = p.revision
			}
			conditions.MarkTrue(vc, v1alpha1.AdmittedCondition, v1alpha1.AdmittedReason, "admitted by TenantPolicy %s", a.Policy.Object.Name)
			if why, ok := p.failed[name]; ok {
				reason := v1alpha1.ApplyFailedReason
				if t := p.hosts[p.hostOf[name]]; t != nil && t.down != nil {
					reason = v1alpha1.HostUnreachableReason
				}
				conditions.MarkFalse(vc, v1alpha1.AppliedCondition, reason, "kept as last applied: %s", why)
			} else if cs := conflictsOf[name]; len(cs) > 0 {
				conditions.MarkFalse(vc, v1alpha1.AppliedCondition, v1alpha1.ConflictReason, "not written because warren does not own them: %s", joinLimited(cs))
			} else {
				conditions.MarkTrue(vc, v1alpha1.AppliedCondition, v1alpha1.AppliedReason, "applied from %s", revision)
			}
			vc.Status.ObservedGeneration = vc.Generation
			vc.Status.SourceRevision = revision
			vc.Status.SourcePath = a.Cluster.Source.File
			vc.Status.HostNamespace = names.Namespace
			vc.Status.HostObjects.StatefulSet = names.StatefulSet
			vc.Status.HostObjects.Service = names.Service
			vc.Status.HostObjects.PKISecret = names.PKISecret
			vc.Status.HostObjects.KubeconfigSecret = names.KubeconfigSecret
		}})
	}
	for name, why := range p.kept {
		if _, ok := p.existing[name]; !ok {
			continue
		}
		writes = append(writes, write{name, func(vc *v1alpha1.VirtualCluster) {
			conditions.MarkFalse(vc, v1alpha1.AdmittedCondition, v1alpha1.NotAdmittedReason, "kept as last applied from %s: %s", vc.Status.SourceRevision, why)
		}})
	}
	errs := make([]error, len(writes))
	inParallelBy(statusWriters, len(writes), func(i int) { errs[i] = r.patchClusterStatus(ctx, writes[i].name, writes[i].change) })
	return errors.Join(errs...)
}

// patchClusterStatus applies change to a VirtualCluster's status (one just
// created read from the API server), with a warning event when the cluster
// stops being admitted or meets a conflict.
func (r *FleetReconciler) patchClusterStatus(ctx context.Context, name string, change func(*v1alpha1.VirtualCluster)) error {
	w := clusterStatusWriter{client: r.Client, fresh: r.APIReader, changed: r.clusterEvents}
	return w.write(ctx, name, func(vc *v1alpha1.VirtualCluster) error {
		change(vc)
		return nil
	})
}

// clusterEvents records a warning on a cluster that stops being admitted or
// meets a conflict.
func (r *FleetReconciler) clusterEvents(before, after *v1alpha1.VirtualCluster) {
	if cond := conditions.Get(after, v1alpha1.AdmittedCondition); cond != nil && cond.Status == metav1.ConditionFalse {
		if old := conditions.Get(before, v1alpha1.AdmittedCondition); old == nil || old.Status != metav1.ConditionFalse {
			r.event(after, corev1.EventTypeWarning, v1alpha1.NotAdmittedReason, cond.Message)
		}
	}
	if cond := conditions.Get(after, v1alpha1.AppliedCondition); cond != nil && cond.Reason == v1alpha1.ConflictReason {
		if old := conditions.Get(before, v1alpha1.AppliedCondition); old == nil || old.Reason != v1alpha1.ConflictReason {
			r.event(after, corev1.EventTypeWarning, v1alpha1.ConflictReason, cond.Message)
		}
	}
}

func clusterOfConflict(c apply.Conflict, p *fleetScope) string {
	if c.Object.Kind == v1alpha1.VirtualClusterKind {
		return c.Object.Name
	}
	for name, a := range p.desired {
		ns := render.NamesFor(render.InputFor(a, p.loaded.Repo).Cluster).Namespace
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
