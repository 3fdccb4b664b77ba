package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// clusterSnapshot is what must not change while Git holds bad input: every
// host object of each cluster, and each VirtualCluster's spec generation.
type clusterSnapshot struct {
	objects     map[string]string
	generations map[string]string
}

func (h *host) snapshot(names ...string) clusterSnapshot {
	h.t.Helper()
	s := clusterSnapshot{objects: map[string]string{}, generations: h.generations(names...)}
	for _, n := range names {
		for k, rv := range resourceVersions(h.hostObjectsOf(n)) {
			s.objects[k] = rv
		}
	}
	return s
}

// assertUnchanged fails the test if any cluster's VirtualCluster or host
// object is gone or changed since before.
func (h *host) assertUnchanged(before clusterSnapshot, names ...string) {
	h.t.Helper()
	for _, n := range names {
		if _, ok := h.virtualCluster(n); !ok {
			h.t.Errorf("VirtualCluster %s is gone", n)
		}
	}
	after := h.snapshot(names...)
	if diff := diffVersions(before.generations, after.generations); len(diff) > 0 {
		h.t.Errorf("VirtualCluster specs changed: %v", diff)
	}
	if diff := diffVersions(before.objects, after.objects); len(diff) > 0 {
		h.t.Errorf("host objects changed: %v", diff)
	}
}

// fleetNotReady asserts the Fleet is not Ready and its message holds every
// fragment; it returns the message.
func fleetNotReady(t *testing.T, f *v1alpha1.Fleet, fragments ...string) string {
	t.Helper()
	ready := apimeta.FindStatusCondition(f.Status.Conditions, meta.ReadyCondition)
	if ready == nil || ready.Status != metav1.ConditionFalse {
		t.Fatalf("Fleet should not be Ready; %s", fleetState(f))
	}
	for _, frag := range fragments {
		if !strings.Contains(ready.Message, frag) {
			t.Errorf("Fleet's Ready message should name %q: %s", frag, ready.Message)
		}
	}
	return ready.Message
}

// A broken file in Git (bad YAML, an unknown field) stops nothing that runs:
// the Fleet says which file is wrong and every cluster stays as it was. The
// repository is read over file://.
func TestBrokenFilesKeepEveryClusterAsItWas(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"bad-a", "bad-b", "bad-c"}
	repo, sha := newFleetRepo(t, t.TempDir(), "bad", "bad", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-bad", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)

	cases := []struct {
		story, file, content string
		says                 []string
	}{
		{"bad YAML", clusterFile("bad-b"), "apiVersion: warren.dev/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: [bad-b\n",
			[]string{"clusters/bad-b.yaml", "not valid YAML"}},
		{"an unknown field", clusterFile("bad-c"), clusterYAML("bad-c", "bad", "1", "replicas: 3"),
			[]string{"clusters/bad-c.yaml:10", "spec.replicas", "unknown field"}},
	}
	for _, c := range cases {
		t.Run(c.story, func(t *testing.T) {
			h := newHost(t, plane)
			sha := repo.CommitFiles(t, c.story, map[string]string{c.file: c.content})
			f := h.requestReconcile(fleet, time.Minute)
			if !strings.HasSuffix(f.Status.LastAttemptedRevision, sha) {
				t.Fatalf("the reconcile did not see commit %s: %s", sha, fleetState(f))
			}
			msg := fleetNotReady(t, f, c.says...)
			t.Logf("Fleet says: %s", msg)
			h.assertUnchanged(before, names...)
			broken := strings.TrimSuffix(strings.TrimPrefix(c.file, "clusters/"), ".yaml")
			vc, _ := h.virtualCluster(broken)
			if adm := condition(vc, v1alpha1.AdmittedCondition); adm.Status != metav1.ConditionFalse || !strings.Contains(adm.Message, c.file) {
				t.Errorf("VirtualCluster %s should say it is kept as last applied because of %s: %+v", broken, c.file, adm)
			}
			// Put the file back as it was.
			sha = repo.CommitFiles(t, "fix "+c.file, map[string]string{c.file: clusterYAML(broken, "bad", "1")})
			h.requestReconcile(fleet, time.Minute)
			h.waitFleetApplied(fleet, sha, time.Minute)
			h.assertUnchanged(before, names...)
		})
	}
}

// A definition its TenantPolicy now denies is rejected, naming the policy
// and the field; the version admitted before keeps running unchanged.
func TestADeniedDefinitionKeepsItsAdmittedVersion(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	names := []string{"deny-a", "deny-b"}
	repo, sha := newFleetRepo(t, t.TempDir(), "deny", "deny", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-deny", fleetSpec{url: repo.FileURL()})
	h.waitFleetApplied(fleet, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, names...)
	before := h.snapshot(names...)
	admittedSpec := h.mustCluster("deny-a").Spec

	t.Run("the definition asks for more than its policy allows", func(t *testing.T) {
		h := newHost(t, plane)
		repo.CommitFiles(t, "deny-a wants 8 CPUs", map[string]string{clusterFile("deny-a"): clusterYAML("deny-a", "deny", "8")})
		f := h.requestReconcile(fleet, time.Minute)
		t.Logf("Fleet says: %s", fleetNotReady(t, f, "clusters/deny-a.yaml", "spec.resources.cpu", `policy "deny"`))
		h.assertUnchanged(before, names...)
		h.assertKeptAsAdmitted("deny-a", admittedSpec, `policy "deny"`, "spec.resources.cpu")
		if f.Status.RejectedClusters != 1 || f.Status.AdmittedClusters != 1 {
			t.Errorf("Fleet counts %d admitted and %d rejected, want 1 and 1", f.Status.AdmittedClusters, f.Status.RejectedClusters)
		}
	})
	t.Run("the policy is tightened under a running cluster", func(t *testing.T) {
		h := newHost(t, plane)
		repo.CommitFiles(t, "deny-a back to 1 CPU, but the policy now allows half a CPU", map[string]string{
			clusterFile("deny-a"): clusterYAML("deny-a", "deny", "1"),
			"policies/deny.yaml":  policyYAML("deny", 20, "500m"),
		})
		f := h.requestReconcile(fleet, time.Minute)
		t.Logf("Fleet says: %s", fleetNotReady(t, f, "clusters/deny-a.yaml", "clusters/deny-b.yaml", "spec.resources.cpu", `policy "deny"`))
		h.assertUnchanged(before, names...)
		h.assertKeptAsAdmitted("deny-a", admittedSpec, `policy "deny"`, "spec.resources.cpu")
	})
	t.Run("a new definition asks for the host namespace kube-system", func(t *testing.T) {
		h := newHost(t, plane)
		file := clusterFile("deny-sys")
		repo.CommitFiles(t, "deny-sys in kube-system", map[string]string{file: clusterYAML("deny-sys", "deny", "100m", "hostNamespace: kube-system")})
		f := h.requestReconcile(fleet, time.Minute)
		t.Logf("Fleet says: %s", fleetNotReady(t, f, file+":10", "spec.hostNamespace", `"kube-system" is reserved`))
		h.assertUnchanged(before, names...)
		if _, ok := h.virtualCluster("deny-sys"); ok {
			t.Error("a VirtualCluster was made for a definition in kube-system")
		}
		if objs := h.sweep("warren.dev/cluster=deny-sys"); len(objs) > 0 {
			t.Errorf("objects were applied for the refused cluster: %v", keys(objs))
		}
	})
}

func (h *host) mustCluster(name string) *v1alpha1.VirtualCluster {
	h.t.Helper()
	vc, ok := h.virtualCluster(name)
	if !ok {
		h.t.Fatalf("VirtualCluster %s does not exist", name)
	}
	return vc
}

// assertKeptAsAdmitted checks a cluster still has its admitted spec and
// says, in its Admitted condition, why its new definition was not taken.
func (h *host) assertKeptAsAdmitted(name string, spec v1alpha1.VirtualClusterSpec, says ...string) {
	h.t.Helper()
	vc := h.mustCluster(name)
	if vc.Spec.Resources.CPU.String() != spec.Resources.CPU.String() {
		h.t.Errorf("VirtualCluster %s: cpu %s, want the admitted %s", name, vc.Spec.Resources.CPU, spec.Resources.CPU)
	}
	adm := condition(vc, v1alpha1.AdmittedCondition)
	if adm.Status != metav1.ConditionFalse {
		h.t.Errorf("VirtualCluster %s: Admitted should be False: %+v", name, adm)
	}
	for _, s := range says {
		if !strings.Contains(adm.Message, s) {
			h.t.Errorf("VirtualCluster %s: Admitted message should name %q: %s", name, s, adm.Message)
		}
	}
}
