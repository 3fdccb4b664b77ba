package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/warren-dev/warren/internal/plan"
	"github.com/warren-dev/warren/test/fleettest"
)

func withMemory(name, memory string) string {
	return fleettest.Cluster(name) + "  resources:\n    memory: " + memory + "\n"
}

// revisions writes a fleet (in the folder fleet/ of a Git repository) at two
// revisions: the second adds delta, changes beta's memory and deletes gamma;
// alpha stays as it is. It returns the repository's fleet folder.
func revisions(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	fleet := filepath.Join(repo, "fleet")
	testkit.Git(t, repo, "init", "-q", "-b", "main")
	fleettest.Write(t, fleet, fleettest.Files{
		"policies/team-a.yaml": fleettest.Policy,
		"clusters/alpha.yaml":  withMemory("alpha", "1Gi"),
		"clusters/beta.yaml":   withMemory("beta", "1Gi"),
		"clusters/gamma.yaml":  withMemory("gamma", "1Gi"),
	})
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "alpha, beta, gamma")

	fleettest.Write(t, fleet, fleettest.Files{
		"clusters/beta.yaml":  withMemory("beta", "2Gi"),
		"clusters/delta.yaml": withMemory("delta", "1Gi"),
	})
	if err := os.Remove(filepath.Join(fleet, "clusters", "gamma.yaml")); err != nil {
		t.Fatal(err)
	}
	testkit.Git(t, repo, "add", "-A")
	testkit.Git(t, repo, "commit", "-q", "-m", "add delta, grow beta, drop gamma")
	return fleet
}

func checkThreeChanges(t *testing.T, p plan.Plan) {
	t.Helper()
	got := map[string]plan.Action{}
	for _, c := range p.Clusters {
		got[c.Name] = c.Action
	}
	want := map[string]plan.Action{"delta": plan.Create, "beta": plan.Change, "gamma": plan.Delete}
	if len(got) != 3 || got["delta"] != want["delta"] || got["beta"] != want["beta"] || got["gamma"] != want["gamma"] {
		t.Fatalf("plan clusters %v, want exactly %v", got, want)
	}
	if len(p.Unchanged) != 1 || p.Unchanged[0] != "alpha" {
		t.Errorf("unchanged %v, want [alpha]", p.Unchanged)
	}
	for _, c := range p.Clusters {
		if c.Name != "beta" {
			continue
		}
		if len(c.Objects) != 1 || c.Objects[0].Kind != "ResourceQuota" || c.Objects[0].Name != "beta" {
			t.Fatalf("beta's changed objects: %+v; want its ResourceQuota only", c.Objects)
		}
		diff := c.Objects[0].Diff
		if !strings.Contains(diff, "-    requests.memory: 1344Mi") || !strings.Contains(diff, "+    requests.memory: 2368Mi") {
			t.Errorf("beta's quota diff:\n%s", diff)
		}
	}
}

// A pull request that adds one cluster, changes another and deletes a third
// gets a plan listing exactly those three, with the changed objects' diff,
// between the base revision and the working tree.
func TestPlanAgainstABaseRevision(t *testing.T) {
	fleet := revisions(t)
	code, stdout, stderr := warren(t, "plan", fleet, "--base", "HEAD~1", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	checkThreeChanges(t, p)

	// The same as a pull-request comment.
	code, md, _ := warren(t, "plan", fleet, "--base", "HEAD~1", "--output", "markdown")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"| `beta` | change | 1 to change |", "| `delta` | create |", "| `gamma` | delete |", "```diff", "+    requests.memory: 2368Mi"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "`alpha` |") {
		t.Errorf("markdown lists unchanged alpha as a change:\n%s", md)
	}
}

// Two checkouts side by side give the same plan as a base revision.
func TestPlanBetweenTwoDirectories(t *testing.T) {
	fleet := revisions(t)
	old := t.TempDir()
	fleettest.Write(t, old, fleettest.Files{
		"policies/team-a.yaml": fleettest.Policy,
		"clusters/alpha.yaml":  withMemory("alpha", "1Gi"),
		"clusters/beta.yaml":   withMemory("beta", "1Gi"),
		"clusters/gamma.yaml":  withMemory("gamma", "1Gi"),
	})
	code, stdout, stderr := warren(t, "plan", old, fleet, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil {
		t.Fatal(err)
	}
	checkThreeChanges(t, p)
}

// A change that breaks a definition shows the problem in the plan, marks
// the cluster blocked rather than deleted, and fails CI.
func TestPlanShowsProblemsAndBlocksTheCluster(t *testing.T) {
	fleet := revisions(t)
	if err := os.WriteFile(filepath.Join(fleet, "clusters", "beta.yaml"),
		[]byte(withMemory("beta", "2Gi")+"  distro: k8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := warren(t, "plan", fleet, "--base", "HEAD")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	if !strings.Contains(stdout, "blocked beta") || !strings.Contains(stdout, `clusters/beta.yaml:9: spec.distro: policy "team-a"`) {
		t.Errorf("plan:\n%s", stdout)
	}
}

// A base revision that does not exist is warren failing, not a verdict.
func TestPlanUnknownRevision(t *testing.T) {
	fleet := revisions(t)
	if code, _, stderr := warren(t, "plan", fleet, "--base", "no-such-branch"); code != 2 || !strings.Contains(stderr, "no-such-branch") {
		t.Errorf("exit %d, %s", code, stderr)
	}
}

// A pull request that moves a running cluster to another host is shown as
// a move, from and to, and fails CI with the problem the reconciler would
// give: a cluster cannot change host once it runs.
func TestPlanShowsAChangeOfHostAsARefusedMove(t *testing.T) {
	old, changed := t.TempDir(), t.TempDir()
	policy := fleettest.Policy + "  hosts: [east]\n"
	fleettest.Write(t, old, fleettest.Files{"policies/team-a.yaml": policy, "clusters/alpha.yaml": withMemory("alpha", "1Gi")})
	fleettest.Write(t, changed, fleettest.Files{"policies/team-a.yaml": policy, "clusters/alpha.yaml": withMemory("alpha", "1Gi") + "  host: east\n"})
	code, stdout, stderr := warren(t, "plan", old, changed)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"move alpha from host local to host east",
		`clusters/alpha.yaml:9: spec.host: cluster alpha runs on host "local"; moving it to "east" is refused`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan does not say %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = warren(t, "plan", old, changed, "-o", "json")
	var p plan.Plan
	if err := json.Unmarshal([]byte(stdout), &p); err != nil || code != 1 {
		t.Fatalf("exit %d, %v", code, err)
	}
	if len(p.Clusters) != 1 || p.Clusters[0].Action != plan.Move || p.Clusters[0].FromHost != "local" || p.Clusters[0].ToHost != "east" {
		t.Errorf("plan clusters %+v, want one move of alpha from local to east", p.Clusters)
	}
}

// validate judges a repository as a Fleet whose default host is
// --default-host: a host the policy does not list is allowed as the default.
func TestValidateDefaultHost(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{"policies/team-a.yaml": fleettest.Policy, "clusters/a.yaml": fleettest.Cluster("a") + "  host: east\n"})
	if code, stdout, _ := warren(t, "validate", root); code != 1 || !strings.Contains(stdout, `clusters/a.yaml:7: spec.host: policy "team-a": host "east" is not allowed (allowed: local)`) {
		t.Errorf("validate: exit %d\n%s", code, stdout)
	}
	if code, stdout, stderr := warren(t, "validate", root, "--default-host", "east"); code != 0 {
		t.Errorf("validate --default-host east: exit %d\n%s%s", code, stdout, stderr)
	}
}
