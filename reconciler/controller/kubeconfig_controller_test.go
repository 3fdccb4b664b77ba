package controller

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/reconciler/source"
	"github.com/warren-dev/warren/test/fleettest"
)

// warren's own commit adds kubeconfigs/alpha.yaml: the Fleet controller
// loads the new revision, but rendering is keyed by what the cluster is
// made of, not by the revision, so nothing is rendered again.
func TestAKubeconfigsOnlyRevisionRendersNothingNew(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": fleettest.Policy,
		"clusters/alpha.yaml":  fleettest.Cluster("alpha"),
	}
	before, after := t.TempDir(), t.TempDir()
	fleettest.Write(t, before, files)
	files["kubeconfigs/alpha.yaml"] = "# sealed by warren\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"
	fleettest.Write(t, after, files)

	r := &FleetReconciler{Version: "test"}
	fleet := &v1alpha1.Fleet{}
	pkiReads := 0
	opts := render.Options{ServiceCIDR: "10.96.0.0/16", SyncerImage: "warren-syncer:test"}
	rendered := func(snap *source.Snapshot) (*loaded, []apply.Object) {
		t.Helper()
		l, err := r.load(fleet, snap, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Problems) > 0 || len(l.Admitted) != 1 {
			t.Fatalf("revision %s: problems %v, %d admitted", snap.Revision, l.Problems, len(l.Admitted))
		}
		// The PKI phase reads the Secret only for a cluster whose render
		// is not current.
		var pki *unstructured.Unstructured
		if !r.renders.current(l.Admitted[0], l.Repo, opts, r.Version, "uid-alpha") {
			pkiReads++
			cluster := render.InputFor(l.Admitted[0], l.Repo).Cluster
			pki = &unstructured.Unstructured{}
			pki.SetAPIVersion("v1")
			pki.SetKind("Secret")
			pki.SetNamespace(render.NamesFor(cluster).Namespace)
			pki.SetName(cluster.Name + "-pki")
		}
		objs, err := r.renders.get(l.Admitted[0], l.Repo, opts, r.Version, "uid-alpha", pki, fleetOwner(fleet))
		if err != nil {
			t.Fatal(err)
		}
		return l, objs
	}
	l1, first := rendered(&source.Snapshot{Revision: "main@sha1:1111", Dir: before})
	l2, second := rendered(&source.Snapshot{Revision: "main@sha1:2222", Dir: after})
	if l1 == l2 {
		t.Fatal("the new revision was not loaded at all; the test proves nothing")
	}
	// The cache hands back what it rendered before by names and digests
	// alone (a new render would carry the objects themselves).
	known := make([]apply.Object, len(first))
	for i, o := range first {
		known[i] = o.Known()
	}
	if reflect.DeepEqual(first, known) || !reflect.DeepEqual(second, known) || pkiReads != 1 {
		t.Fatalf("a revision that only adds kubeconfigs/ rendered alpha again (%d objects, then %d; by digest alone the second time: %v), PKI Secret read %d times",
			len(first), len(second), reflect.DeepEqual(second, known), pkiReads)
	}
}

func TestKubeconfigSettingsThatCannotWorkAreRefused(t *testing.T) {
	r := &KubeconfigReconciler{}
	for name, tc := range map[string]struct {
		path, dir string
		ref       *v1alpha1.GitRef
		says      string
	}{
		"clusters folder":       {dir: "clusters/kubeconfigs", says: "overlaps the fleet's clusters/"},
		"policies under path":   {path: "fleet", dir: "fleet/policies", says: "overlaps the fleet's policies/"},
		"fleet inside the path": {path: "fleet", dir: "fleet", says: "overlaps"},
		"leaves the repository": {dir: "../out", says: "inside the repository"},
		"root":                  {dir: ".", says: "inside the repository"},
		"a tag":                 {dir: "kubeconfigs", ref: &v1alpha1.GitRef{Tag: "v1"}, says: "tag or commit"},
	} {
		fleet := &v1alpha1.Fleet{Spec: v1alpha1.FleetSpec{Path: tc.path, Ref: tc.ref}}
		if _, err := r.checkSettings(fleet, tc.dir); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, tc.says)
		}
	}
	fleet := &v1alpha1.Fleet{Spec: v1alpha1.FleetSpec{Path: "fleet", Ref: &v1alpha1.GitRef{Branch: "prod"}}}
	for _, dir := range []string{"kubeconfigs", "fleet/kubeconfigs", "fleet/clusters-kubeconfigs"} {
		if branch, err := r.checkSettings(fleet, dir); err != nil || branch != "prod" {
			t.Errorf("%s: %q, %v", dir, branch, err)
		}
	}
}

func TestTenantIdentityIsTheTenantAndItsPolicyGroups(t *testing.T) {
	p := &v1alpha1.TenantPolicy{Spec: v1alpha1.TenantPolicySpec{Tenant: "team-a", Subjects: []v1alpha1.Subject{
		{Kind: v1alpha1.SubjectGroup, Name: "team-a"},
		{Kind: v1alpha1.SubjectUser, Name: "alice"},
		{Kind: v1alpha1.SubjectGroup, Name: "auditors"},
	}}}
	id := TenantIdentity(p)
	if id.User != "tenant:team-a" || strings.Join(id.Groups, ",") != "team-a,auditors" {
		t.Fatalf("identity %+v", id)
	}
	if err := id.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFilesInListsOnlyTheFolder(t *testing.T) {
	dir := t.TempDir()
	fleettest.Write(t, dir, fleettest.Files{"kubeconfigs/a.yaml": "x", "kubeconfigs/sub/b.yaml": "y", "other/c.yaml": "z"})
	if err := os.Symlink("a.yaml", filepath.Join(dir, "kubeconfigs", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	snap := &source.Snapshot{Dir: dir}
	got, err := filesIn(snap, "kubeconfigs")
	if err != nil || strings.Join(got, ",") != "kubeconfigs/a.yaml" {
		t.Fatalf("%v, %v", got, err)
	}
	if got, err := filesIn(snap, "none"); err != nil || got != nil {
		t.Fatalf("missing folder: %v, %v", got, err)
	}
}
