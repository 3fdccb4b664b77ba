package render_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
)

// workloadFlags are the syncer flags that carry a cluster's workloads.
var workloadFlags = regexp.MustCompile(`^--(storage-classes|allow-static-binding|node-selector|tolerations|ingress-hosts|ingress-classes|ingress-annotations|pod-annotations|endpoint-cidrs)\b`)

func syncerWorkloadFlags(t *testing.T, out *render.Output) []string {
	t.Helper()
	var flags []string
	for _, a := range args(container(t, find(out.Objects, "StatefulSet", out.Cluster), "syncer")) {
		if workloadFlags.MatchString(a) {
			flags = append(flags, a)
		}
	}
	return flags
}

// What a cluster's workloads may use of the host reaches its syncer as one
// flag each, exactly as the syncer parses them; a cluster asking for less
// gets less; a policy that says nothing gives no flag (the syncer's safe
// defaults).
func TestWorkloadsReachTheSyncerAsFlags(t *testing.T) {
	root := t.TempDir()
	policy := strings.Replace(fleettest.IsolationPolicy, "    endpointCIDRs:", "    staticBinding: true\n    endpointCIDRs:", 1)
	fleettest.Write(t, root, fleettest.Files{
		"policies/team-a.yaml": policy,
		"policies/team-b.yaml": strings.ReplaceAll(fleettest.Policy, "team-a", "team-b"),
		"clusters/full.yaml":   fleettest.Cluster("full"),
		"clusters/less.yaml": fleettest.Cluster("less") + `  workloads:
    staticBinding: false
    tolerations: []
    ingressHosts: [www.team-a.example.com]
`,
		"clusters/bare.yaml": strings.Replace(fleettest.Cluster("bare"), "team-a", "team-b", 1),
	})
	outs := renderDir(t, root, render.Options{})
	byName := map[string]*render.Output{}
	for _, o := range outs {
		byName[o.Cluster] = o
	}
	tolerations := `--tolerations=[{"key":"dedicated","value":"tenants","effect":"NoSchedule"}]`
	for _, tc := range []struct {
		cluster string
		want    []string
	}{
		{"full", []string{
			"--storage-classes=standard",
			"--allow-static-binding",
			"--node-selector=pool=tenants",
			tolerations,
			"--ingress-hosts=*.team-a.example.com",
			"--ingress-classes=public",
			"--ingress-annotations=nginx.ingress.kubernetes.io/rewrite-target",
			"--pod-annotations=prometheus.io/*",
			"--endpoint-cidrs=10.20.0.0/16",
		}},
		{"less", []string{
			"--storage-classes=standard",
			"--node-selector=pool=tenants",
			"--ingress-hosts=www.team-a.example.com",
			"--ingress-classes=public",
			"--ingress-annotations=nginx.ingress.kubernetes.io/rewrite-target",
			"--pod-annotations=prometheus.io/*",
			"--endpoint-cidrs=10.20.0.0/16",
		}},
		{"bare", nil},
	} {
		got := syncerWorkloadFlags(t, byName[tc.cluster])
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: syncer flags\n got %q\nwant %q", tc.cluster, got, tc.want)
		}
	}
	// The tolerations flag is a JSON array of core/v1 Tolerations.
	var ts []corev1.Toleration
	if err := json.Unmarshal([]byte(strings.TrimPrefix(tolerations, "--tolerations=")), &ts); err != nil || len(ts) != 1 || ts[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations do not parse as core/v1: %v %+v", err, ts)
	}
}

// labelSelectors returns every label selector in obj, wherever it sits
// (a Service's selector, a StatefulSet's, a NetworkPolicy's pod and
// namespace selectors), as the keys they select on.
func labelSelectors(v any, path string, out map[string][]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			p := path + "." + k
			if strings.HasSuffix(strings.ToLower(k), "selector") {
				if m, ok := child.(map[string]any); ok {
					out[p] = append(out[p], selectorKeys(m)...)
				}
			}
			labelSelectors(child, p, out)
		}
	case []any:
		for _, child := range v {
			labelSelectors(child, path+"[]", out)
		}
	}
}

func selectorKeys(m map[string]any) []string {
	var keys []string
	for k, v := range m {
		switch k {
		case "matchLabels":
			for lk := range v.(map[string]any) {
				keys = append(keys, lk)
			}
		case "matchExpressions":
			for _, e := range v.([]any) {
				keys = append(keys, e.(map[string]any)["key"].(string))
			}
		default:
			keys = append(keys, k)
		}
	}
	return keys
}

// warren's own selectors on the host (the API Services, the StatefulSet,
// the NetworkPolicies) select only by warren.dev keys, which the syncer
// never copies from a tenant's object: no tenant pod can join the API's
// endpoints or its NetworkPolicy.
func TestWarrensSelectorsUseOnlyKeysNoTenantCanCarry(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, everyOption)
	outs := append(renderDir(t, exampleFleet, render.Options{}), renderDir(t, root, render.Options{})...)
	selected := 0
	for _, out := range outs {
		for _, o := range out.Objects {
			found := map[string][]string{}
			labelSelectors(o.Object, "", found)
			for p, keys := range found {
				for _, k := range keys {
					selected++
					prefix, _, ok := strings.Cut(k, "/")
					if !ok || !load.IsWarrenDomain(prefix) {
						t.Errorf("%s: %s %s selects by %q at %s; only warren.dev keys are safe from tenants", out.Cluster, o.GetKind(), o.GetName(), k, p)
					}
				}
			}
		}
		sts := find(out.Objects, "StatefulSet", out.Cluster)
		labels, _, _ := unstructured.NestedStringMap(sts.Object, "spec", "template", "metadata", "labels")
		if labels["warren.dev/component"] != "control-plane" || labels["warren.dev/cluster"] != out.Cluster {
			t.Errorf("%s: control plane pod labels %v", out.Cluster, labels)
		}
	}
	if selected == 0 {
		t.Fatal("found no selectors at all")
	}
}

// Every host namespace warren creates carries Pod Security Admission
// labels, enforce, warn and audit, at the policy's level.
func TestHostNamespacesEnforceWarnAndAuditPodSecurity(t *testing.T) {
	for _, out := range renderDir(t, exampleFleet, render.Options{}) {
		want := "restricted"
		if strings.HasPrefix(out.Cluster, "search") {
			want = "baseline"
		}
		l := find(out.Objects, "Namespace", "vc-"+out.Cluster).GetLabels()
		for _, mode := range []string{"enforce", "warn", "audit"} {
			if got := l["pod-security.kubernetes.io/"+mode]; got != want {
				t.Errorf("%s: %s=%q, want %q", out.Cluster, mode, got, want)
			}
		}
	}
}

// docRoleRules reads the "Minimal Role rules" block of docs/syncer.md.
func docRoleRules(t *testing.T) (always, ingresses []rbacv1.PolicyRule) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "syncer.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Minimal Role rules:\n\n```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/syncer.md has no Minimal Role rules block")
	}
	base, withIngresses, _ := strings.Cut(block, "# only with --sync-ingresses:\n")
	var a, i struct{ Rules []rbacv1.PolicyRule }
	if err := yaml.Unmarshal([]byte(base), &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte("rules:\n"+withIngresses), &i); err != nil {
		t.Fatal(err)
	}
	return a.Rules, i.Rules
}

func rules(t *testing.T, o *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	if o == nil {
		return nil
	}
	var role rbacv1.ClusterRole // a Role's rules read the same
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
		t.Fatal(err)
	}
	return role.Rules
}

// The syncer's host rights are exactly what docs/syncer.md promises: the
// Role's rules (ingresses only with sync.ingresses), and outside the
// namespace read-only rights only for real nodes (get, one node at a time)
// and mirrored storage classes. Nothing else is rendered with rights.
func TestSyncerRBACIsWhatTheDocsPromise(t *testing.T) {
	always, ingresses := docRoleRules(t)
	root := t.TempDir()
	fleettest.Write(t, root, everyOption)
	outs := append(renderDir(t, exampleFleet, render.Options{}), renderDir(t, root, render.Options{})...)
	for _, out := range outs {
		want := slices.Clone(always)
		syncer := args(container(t, find(out.Objects, "StatefulSet", out.Cluster), "syncer"))
		if slices.Contains(syncer, "--sync-ingresses=true") {
			want = append(want, ingresses...)
		}
		if got := rules(t, find(out.Objects, "Role", out.Cluster+"-syncer")); !equalRules(got, want) {
			t.Errorf("%s: Role rules\n got %+v\nwant %+v", out.Cluster, got, want)
		}
		var wantCluster []rbacv1.PolicyRule
		if slices.Contains(syncer, "--nodes=real") {
			wantCluster = append(wantCluster, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}})
		}
		if slices.Contains(syncer, "--sync-storage-classes=true") {
			wantCluster = append(wantCluster, rbacv1.PolicyRule{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get", "list", "watch"}})
		}
		if got := rules(t, find(out.Objects, "ClusterRole", "warren-vc-"+out.Cluster+"-syncer")); !equalRules(got, wantCluster) {
			t.Errorf("%s: ClusterRole rules\n got %+v\nwant %+v", out.Cluster, got, wantCluster)
		}
		for _, o := range out.Objects {
			switch o.GetKind() {
			case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
				if !strings.HasSuffix(o.GetName(), "-syncer") {
					t.Errorf("%s: unexpected %s %s", out.Cluster, o.GetKind(), o.GetName())
				}
			}
		}
	}
}

func equalRules(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].APIGroups, b[i].APIGroups) || !slices.Equal(a[i].Resources, b[i].Resources) ||
			!slices.Equal(a[i].Verbs, b[i].Verbs) || len(a[i].ResourceNames) != len(b[i].ResourceNames) || len(a[i].NonResourceURLs) != 0 {
			return false
		}
	}
	return true
}

// apiPolicyPeers are the sources the cluster's API policy admits on 6443.
func apiPolicyPeers(t *testing.T, out *render.Output) []networkingv1.NetworkPolicyPeer {
	t.Helper()
	obj := find(out.Objects, "NetworkPolicy", out.Cluster+"-api")
	if obj == nil {
		t.Fatalf("%s has no NetworkPolicy %s-api", out.Cluster, out.Cluster)
	}
	var np networkingv1.NetworkPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &np); err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 6443 {
		t.Fatalf("%s-api admits more than 6443: %+v", out.Cluster, np.Spec.Ingress)
	}
	return np.Spec.Ingress[0].From
}

// A cluster's API takes traffic on 6443 from pods of namespaces that are no
// cluster's (its own namespace's pods come through N-isolation) and from
// addresses outside the host's pod network: the pod ranges the reconciler
// is told, each family's, or else every private range. Another cluster's
// pods, whose namespace carries warren.dev/cluster and whose addresses are
// in those ranges, match no peer.
func TestTheAPIAdmitsNoOtherClustersPods(t *testing.T) {
	for _, tc := range []struct {
		podCIDRs   []string
		wantV4     []string
		wantV6     []string
		wantReject bool
	}{
		{nil, []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"}, []string{"fc00::/7"}, false},
		{[]string{"10.244.0.0/16", "10.245.0.0/16"}, []string{"10.244.0.0/16", "10.245.0.0/16"}, []string{"fc00::/7"}, false},
		{[]string{"10.244.0.0/16", "fd00:10:244::/56"}, []string{"10.244.0.0/16"}, []string{"fd00:10:244::/56"}, false},
		{[]string{"10.244.0.1/16"}, nil, nil, true},
	} {
		repo, _, err := load.Dir(exampleFleet)
		if err != nil {
			t.Fatal(err)
		}
		admitted, _ := policy.Admit(repo, policy.Options{})
		outs, err := render.Fleet(repo, admitted, render.Options{PodCIDRs: tc.podCIDRs})
		if tc.wantReject {
			if err == nil {
				t.Errorf("pod CIDRs %v accepted", tc.podCIDRs)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		peers := apiPolicyPeers(t, outs[0])
		if len(peers) != 3 || peers[0].NamespaceSelector == nil || peers[0].PodSelector != nil || peers[1].IPBlock == nil || peers[2].IPBlock == nil {
			t.Fatalf("pod CIDRs %v: peers %+v", tc.podCIDRs, peers)
		}
		want := metav1.LabelSelectorRequirement{Key: "warren.dev/cluster", Operator: metav1.LabelSelectorOpDoesNotExist}
		if ns := peers[0].NamespaceSelector; len(ns.MatchLabels) != 0 || len(ns.MatchExpressions) != 1 || !reflect.DeepEqual(ns.MatchExpressions[0], want) {
			t.Errorf("the namespace peer %+v admits more than namespaces without %s", ns, want.Key)
		}
		for i, block := range []struct {
			cidr   string
			except []string
		}{{"0.0.0.0/0", tc.wantV4}, {"::/0", tc.wantV6}} {
			if got := peers[i+1].IPBlock; got.CIDR != block.cidr || !slices.Equal(got.Except, block.except) {
				t.Errorf("pod CIDRs %v: ipBlock %+v, want %s except %v", tc.podCIDRs, got, block.cidr, block.except)
			}
		}
	}
}
