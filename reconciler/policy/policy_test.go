package policy_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/test/fleettest"
)

// strictPolicy is the policy of the rejection stories: one k3s 1.33 cluster
// of at most 2 CPUs, admin only for the team's group.
const strictPolicy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a-limits
spec:
  tenant: team-a
  maxClusters: 1
  perCluster:
    cpu: "2"
    memory: 4Gi
  distros:
  - name: k3s
    versions: ["v1.33.*"]
  grants:
  - clusterRoles: [admin]
    subjects:
    - kind: Group
      name: team-a
`

func definition(name, spec string) string {
	return fleettest.Cluster(name) + `  resources:
    cpu: "1"
    memory: 1Gi
` + spec
}

func admit(t *testing.T, files fleettest.Files, o policy.Options) ([]policy.Admission, []load.Problem) {
	t.Helper()
	root := t.TempDir()
	fleettest.Write(t, root, files)
	repo, problems, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("load problems:\n%s", load.Problems(problems).Error())
	}
	return policy.Admit(repo, o)
}

// A policy that forbids what a definition asks rejects it, naming the
// policy and the field, at the field's line.
func TestPolicyRejectsWhatItForbids(t *testing.T) {
	for _, tc := range []struct {
		story string
		files fleettest.Files
		file  string
		line  int
		field string
		says  string
	}{
		{
			story: "a distro the policy does not allow",
			files: fleettest.Files{"clusters/a.yaml": definition("a", "  distro: k8s\n")},
			file:  "clusters/a.yaml", line: 10, field: "spec.distro", says: "distro k8s is not allowed (allowed: k3s)",
		},
		{
			story: "a version the policy does not allow",
			files: fleettest.Files{"clusters/a.yaml": definition("a", "  version: v1.32.9\n")},
			file:  "clusters/a.yaml", line: 10, field: "spec.version", says: "k3s version v1.32.9 is not allowed (allowed: v1.33.*)",
		},
		{
			story: "a role the policy does not let anyone grant",
			files: fleettest.Files{"clusters/a.yaml": definition("a", `  access:
  - clusterRole: cluster-admin
    subjects:
    - kind: Group
      name: team-a
`)},
			file: "clusters/a.yaml", line: 11, field: "spec.access[0].clusterRole", says: `cluster role "cluster-admin" may not be granted (grantable: admin)`,
		},
		{
			story: "an allowed role granted to someone the policy does not name",
			files: fleettest.Files{"clusters/a.yaml": definition("a", `  access:
  - clusterRole: admin
    subjects:
    - kind: Group
      name: team-a
    - kind: User
      name: mallory
`)},
			file: "clusters/a.yaml", line: 15, field: "spec.access[0].subjects[1]", says: `may not be granted to User mallory`,
		},
		{
			story: "NodePort services the policy does not allow",
			files: fleettest.Files{"clusters/a.yaml": definition("a", "  sync:\n    nodePorts: true\n")},
			file:  "clusters/a.yaml", line: 11, field: "spec.sync.nodePorts", says: "NodePort services are not allowed",
		},
		{
			story: "LoadBalancer services the policy does not allow",
			files: fleettest.Files{"clusters/a.yaml": definition("a", "  sync:\n    loadBalancers: true\n")},
			file:  "clusters/a.yaml", line: 11, field: "spec.sync.loadBalancers", says: "LoadBalancer services are not allowed",
		},
		{
			story: "a resource amount over the per-cluster limit",
			files: fleettest.Files{"clusters/a.yaml": strings.Replace(definition("a", ""), `cpu: "1"`, `cpu: "3"`, 1)},
			file:  "clusters/a.yaml", line: 8, field: "spec.resources.cpu", says: "cpu 3 is over the per-cluster limit of 2",
		},
		{
			story: "a limited resource the definition does not ask for",
			files: fleettest.Files{"clusters/a.yaml": strings.Replace(definition("a", ""), "    memory: 1Gi\n", "", 1)},
			file:  "clusters/a.yaml", line: 7, field: "spec.resources.memory", says: "required: the policy limits each cluster's memory to 4Gi",
		},
		{
			story: "one cluster too many",
			files: fleettest.Files{
				"clusters/a.yaml": definition("a", ""),
				"clusters/b.yaml": definition("b", ""),
			},
			file: "clusters/b.yaml", line: 4, field: "metadata.name", says: `tenant "team-a" may have at most 1 clusters`,
		},
	} {
		t.Run(tc.story, func(t *testing.T) {
			tc.files["policies/team-a.yaml"] = strictPolicy
			admitted, problems := admit(t, tc.files, policy.Options{})
			if len(problems) != 1 {
				t.Fatalf("want exactly one problem, got:\n%s", load.Problems(problems).Error())
			}
			p := problems[0]
			if p.File != tc.file || p.Line != tc.line || p.Field != tc.field || p.Policy != "team-a-limits" {
				t.Errorf("got %s (policy %q); want %s:%d: %s from policy team-a-limits", p, p.Policy, tc.file, tc.line, tc.field)
			}
			if !strings.Contains(p.Message, `policy "team-a-limits"`) || !strings.Contains(p.Message, tc.says) {
				t.Errorf("message %q does not name the policy or say %q", p.Message, tc.says)
			}
			for _, a := range admitted {
				if a.Cluster.Source.File == tc.file {
					t.Errorf("the rejected cluster %s was admitted", a.Cluster.Name())
				}
			}
		})
	}
}

// The tenant's totals count clusters that already run first: adding a
// cluster when the tenant is at its limit rejects the newcomer, even when
// its name sorts first.
func TestOneClusterTooManyRejectsTheNewcomer(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": strictPolicy,
		"clusters/zeta.yaml":   definition("zeta", ""),
		"clusters/alpha.yaml":  definition("alpha", ""),
	}
	admitted, problems := admit(t, files, policy.Options{Existing: []string{"zeta"}})
	if len(admitted) != 1 || admitted[0].Cluster.Name() != "zeta" {
		t.Fatalf("admitted %v, want zeta only", admitted)
	}
	if len(problems) != 1 || problems[0].File != "clusters/alpha.yaml" {
		t.Fatalf("problems: %v", problems)
	}
}

// Totals across a tenant's clusters are checked, not only each cluster.
func TestTenantTotalsAreChecked(t *testing.T) {
	pol := `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: shared-budget
spec:
  tenant: team-a
  maxClusters: 3
  total:
    memory: 3Gi
`
	files := fleettest.Files{"policies/p.yaml": pol}
	for _, n := range []string{"a", "b", "c"} {
		files["clusters/"+n+".yaml"] = definition(n, "")
		files["clusters/"+n+".yaml"] = strings.Replace(files["clusters/"+n+".yaml"], "memory: 1Gi", "memory: 1536Mi", 1)
	}
	admitted, problems := admit(t, files, policy.Options{})
	if len(admitted) != 2 {
		t.Errorf("admitted %d clusters, want 2 (3Gi of 1536Mi each)", len(admitted))
	}
	if len(problems) != 1 || problems[0].File != "clusters/c.yaml" || problems[0].Field != "spec.resources.memory" ||
		!strings.Contains(problems[0].Message, "total memory would be 4608Mi, over the total limit of 3Gi") {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
}

// A definition whose tenant has no policy is not admitted.
func TestNoPolicyNoCluster(t *testing.T) {
	admitted, problems := admit(t, fleettest.Files{"clusters/a.yaml": fleettest.Cluster("a")}, policy.Options{})
	if len(admitted) != 0 || len(problems) != 1 || problems[0].Field != "spec.tenant" {
		t.Fatalf("admitted %v, problems %v", admitted, problems)
	}
}

// Everything the example fleet asks for, its policies allow.
func TestExampleFleetIsAdmitted(t *testing.T) {
	repo, problems, err := load.Dir(filepath.Join("..", "..", "examples", "fleet"))
	if err != nil || len(problems) > 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	admitted, problems := policy.Admit(repo, policy.Options{})
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
	if len(admitted) != 4 {
		t.Fatalf("admitted %d, want 4", len(admitted))
	}
}

// The denied example is rejected with exactly the message its README shows.
func TestDeniedExample(t *testing.T) {
	repo, problems, err := load.Dir(filepath.Join("..", "..", "examples", "denied"))
	if err != nil || len(problems) > 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	_, problems = policy.Admit(repo, policy.Options{})
	if len(problems) == 0 {
		t.Fatal("the denied example was admitted")
	}
	readme, err := readFile(filepath.Join("..", "..", "examples", "denied", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if !strings.Contains(readme, p.String()) {
			t.Errorf("README.md does not show %q", p.String())
		}
	}
}

// A grant allowance without subjects lets a cluster grant the role to the
// tenant's own people, and to no one else.
func TestGrantsDefaultToTheTenantsSubjects(t *testing.T) {
	pol := `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: own-people
spec:
  tenant: team-a
  subjects: [{kind: Group, name: team-a}]
  maxClusters: 2
  grants:
  - clusterRoles: [admin]
`
	grant := func(name, group string) string {
		return fleettest.Cluster(name) + "  access:\n  - clusterRole: admin\n    subjects: [{kind: Group, name: " + group + "}]\n"
	}
	admitted, problems := admit(t, fleettest.Files{
		"policies/p.yaml": pol,
		"clusters/a.yaml": grant("a", "team-a"),
		"clusters/b.yaml": grant("b", "strangers"),
	}, policy.Options{})
	if len(admitted) != 1 || admitted[0].Cluster.Name() != "a" {
		t.Errorf("admitted %v, want a", admitted)
	}
	if len(problems) != 1 || problems[0].File != "clusters/b.yaml" || problems[0].Field != "spec.access[0].subjects[0]" {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
}

// Every way a definition can ask for more of the host than its policy
// allows (namespaces, storage, placement, ingress, annotations, endpoint
// ranges) is one problem at the field's line, naming the policy.
func TestPolicyBoundsWhatWorkloadsUseOfTheHost(t *testing.T) {
	for _, v := range fleettest.PolicyViolations() {
		t.Run(v.Name, func(t *testing.T) {
			admitted, problems := admit(t, v.Files, policy.Options{})
			if len(admitted) != 0 {
				t.Errorf("admitted %v", admitted[0].Cluster.Name())
			}
			if len(problems) != 1 {
				t.Fatalf("want exactly one problem, got:\n%s", load.Problems(problems).Error())
			}
			p := problems[0]
			want := v.Prefix() + `policy "team-a": ` + v.Says
			if !strings.HasPrefix(p.String(), want) || p.Policy != "team-a" {
				t.Errorf("got  %s\nwant %s...", p, want)
			}
		})
	}
}

// A definition that asks for nothing gets its policy's workloads as they
// are; one that asks for less gets what it asked; a policy node selector
// value that is a pattern is filled by the cluster.
func TestWorkloadsTakeThePolicysUnlessTheClusterAsksForLess(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": fleettest.IsolationPolicy,
		"clusters/plain.yaml":  fleettest.Cluster("plain"),
		"clusters/less.yaml": fleettest.Cluster("less") + `  hostNamespace: team-a-less
  workloads:
    storageClasses: []
    nodeSelector: {pool: tenants}
    tolerations: []
    ingressHosts: [www.team-a.example.com]
    podAnnotations: [prometheus.io/scrape]
    endpointCIDRs: [10.20.1.0/24]
`,
	}
	admitted, problems := admit(t, files, policy.Options{})
	if len(problems) > 0 || len(admitted) != 2 {
		t.Fatalf("admitted %d, problems:\n%s", len(admitted), load.Problems(problems).Error())
	}
	less, plain := admitted[0].Workloads(), admitted[1].Workloads()
	if got := strings.Join(plain.StorageClasses, ","); got != "standard" {
		t.Errorf("plain storage classes %q, want the policy's", got)
	}
	if plain.NodeSelector["pool"] != "tenants" || len(plain.Tolerations) != 1 || plain.IngressClasses[0] != "public" {
		t.Errorf("plain workloads %+v, want the policy's", plain)
	}
	if plain.StaticBinding != nil {
		t.Error("static binding given although nobody allowed it")
	}
	if len(less.StorageClasses) != 0 || len(less.Tolerations) != 0 || less.IngressHosts[0] != "www.team-a.example.com" ||
		less.PodAnnotations[0] != "prometheus.io/scrape" || less.EndpointCIDRs[0] != "10.20.1.0/24" || less.IngressClasses[0] != "public" {
		t.Errorf("less workloads %+v, want what it asked for", less)
	}

	zoned := strings.Replace(fleettest.IsolationPolicy, "      pool: tenants\n", "      pool: tenants\n      zone: eu-*\n", 1)
	files = fleettest.Files{
		"policies/team-a.yaml": zoned,
		"clusters/east.yaml":   fleettest.Cluster("east") + "  workloads:\n    nodeSelector: {zone: eu-east}\n",
		"clusters/none.yaml":   fleettest.Cluster("none"),
	}
	admitted, problems = admit(t, files, policy.Options{})
	if len(admitted) != 1 || admitted[0].Cluster.Name() != "east" {
		t.Fatalf("admitted %v", admitted)
	}
	if sel := admitted[0].Workloads().NodeSelector; sel["zone"] != "eu-east" || sel["pool"] != "tenants" || len(sel) != 2 {
		t.Errorf("node selector %v, want pool=tenants and zone=eu-east", sel)
	}
	if len(problems) != 1 || problems[0].String() != `clusters/none.yaml:5: spec.workloads.nodeSelector: policy "team-a": required: the policy's node selector zone=eu-* needs a value that matches it` {
		t.Errorf("problems:\n%s", load.Problems(problems).Error())
	}
}

// The namespace the reconciler runs in is refused like warren-system, even
// where the policy's patterns match it.
func TestTheReconcilersNamespaceIsReserved(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": strings.Replace(fleettest.IsolationPolicy, "[team-a-*]", "[team-a-*, platform]", 1),
		"clusters/a.yaml":      fleettest.Cluster("a") + "  hostNamespace: platform\n",
	}
	admitted, problems := admit(t, files, policy.Options{ReservedNamespaces: []string{"platform"}})
	if len(admitted) != 0 || len(problems) != 1 ||
		problems[0].String() != `clusters/a.yaml:7: spec.hostNamespace: policy "team-a": host namespace "platform" is reserved (platform is where warren itself runs)` {
		t.Fatalf("admitted %d, problems:\n%s", len(admitted), load.Problems(problems).Error())
	}
}
