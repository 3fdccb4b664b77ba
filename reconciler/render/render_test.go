package render_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var exampleFleet = filepath.Join("..", "..", "examples", "fleet")

// renderDir loads, admits and renders a repository the way the reconciler
// and warren render do.
func renderDir(t testing.TB, dir string, o render.Options) []*render.Output {
	t.Helper()
	repo, problems, err := load.Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	admitted, more := policy.Admit(repo, policy.Options{})
	problems = append(problems, more...)
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
	outs, err := render.Fleet(repo, admitted, o)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func stream(t testing.TB, outs []*render.Output) []byte {
	t.Helper()
	b, err := render.Stream(outs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The same repository renders byte-identical YAML every time, and that YAML
// is the reviewed golden file.
func TestExampleFleetRendersByteIdenticalYAML(t *testing.T) {
	first := stream(t, renderDir(t, exampleFleet, render.Options{}))
	for range 3 {
		if again := stream(t, renderDir(t, exampleFleet, render.Options{})); !bytes.Equal(first, again) {
			t.Fatal("two renders of the same repository differ")
		}
	}
	golden := filepath.Join("testdata", "fleet.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, first, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./reconciler/render -update to create it)", err)
	}
	if !bytes.Equal(first, want) {
		t.Errorf("render differs from %s; review the change and run with -update", golden)
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func container(t testing.TB, sts *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	for _, field := range []string{"containers", "initContainers"} {
		cs, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", field)
		for _, c := range cs {
			if m := c.(map[string]any); m["name"] == name {
				return m
			}
		}
	}
	t.Fatalf("StatefulSet %s has no container %s", sts.GetName(), name)
	return nil
}

func args(c map[string]any) []string {
	var out []string
	raw, _ := c["args"].([]any)
	for _, a := range raw {
		out = append(out, a.(string))
	}
	return out
}

// Every k3s cluster gets a StatefulSet whose one pod runs k3s, configured as
// the design says, with the syncer beside it speaking the syncer's contract.
// (The example fleet's fourth cluster, apps-dev, is of the k8s distro.)
func TestEachClusterRunsK3sAndTheSyncerInOnePod(t *testing.T) {
	outs := renderDir(t, exampleFleet, render.Options{ServiceCIDR: "10.43.0.0/16"})
	outs = slices.DeleteFunc(outs, func(o *render.Output) bool { return o.Cluster == "apps-dev" })
	if len(outs) != 3 {
		t.Fatalf("rendered %d k3s clusters, want 3", len(outs))
	}
	for _, out := range outs {
		n := out.Cluster
		ns := "vc-" + n
		t.Run(n, func(t *testing.T) {
			sts := find(out.Objects, "StatefulSet", n)
			if sts == nil {
				t.Fatal("no StatefulSet named after the cluster")
			}
			if sts.GetNamespace() != ns {
				t.Errorf("StatefulSet in %q, want %q", sts.GetNamespace(), ns)
			}
			k3s := container(t, sts, "k3s")
			if img := k3s["image"].(string); !strings.HasPrefix(img, "rancher/k3s:v1.33.") {
				t.Errorf("k3s image %s", img)
			}
			got := args(k3s)
			if got[0] != "server" {
				t.Errorf("k3s runs %v, want server first", got)
			}
			for _, want := range []string{
				"--disable-agent",
				"--disable-scheduler",
				"--disable-network-policy",
				"--disable=traefik,servicelb,metrics-server,local-storage",
				"--flannel-backend=none",
				"--service-cidr=10.43.0.0/16",
				"--kube-apiserver-arg=endpoint-reconciler-type=none",
				"--kube-controller-manager-arg=controllers=*,-node-ipam-controller,-node-lifecycle-controller,-taint-eviction-controller,-persistentvolume-attach-detach-controller,-ttl-controller",
				"--data-dir=/data",
				"--write-kubeconfig=/data/kubeconfig.yaml",
				"--tls-san=" + n + "." + ns + ".svc",
			} {
				if !slices.Contains(got, want) {
					t.Errorf("k3s lacks %s in %v", want, got)
				}
			}
			syncer := container(t, sts, "syncer")
			gotSyncer := args(syncer)
			for _, want := range []string{
				"--name=" + n,
				"--host-namespace=" + ns,
				"--virtual-kubeconfig=/data/kubeconfig.yaml",
				"--service-cidr=10.43.0.0/16",
				"--service-name=" + n,
				"--init-manifests=" + n + "-init-manifests",
				"--kubeconfig-secret=" + n + "-kubeconfig",
				"--config=/etc/warren/syncer.yaml",
				"--nodes=fake",
				"--leader-elect=true",
			} {
				if !slices.Contains(gotSyncer, want) {
					t.Errorf("syncer lacks %s in %v", want, gotSyncer)
				}
			}
			// The PKI is referenced, never generated.
			vols, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "volumes")
			var secretName string
			for _, v := range vols {
				if s, ok := v.(map[string]any)["secret"].(map[string]any); ok {
					secretName, _ = s["secretName"].(string)
				}
			}
			if secretName != n+"-pki" {
				t.Errorf("pod mounts secret %q, want %s-pki", secretName, n)
			}
			if find(out.Objects, "Secret", n+"-pki") != nil {
				t.Error("render generated the PKI Secret; only the reconciler creates it")
			}
			claims, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
			if len(claims) != 1 || claims[0].(map[string]any)["metadata"].(map[string]any)["name"] != "data" {
				t.Errorf("volumeClaimTemplates: %v", claims)
			}
			for kind, name := range map[string]string{
				"Namespace": ns, "Service": n, "ServiceAccount": n + "-syncer", "Role": n + "-syncer",
				"RoleBinding": n + "-syncer", "ConfigMap": n + "-init-manifests", "ResourceQuota": n,
				"LimitRange": n, "NetworkPolicy": n + "-isolation",
			} {
				if find(out.Objects, kind, name) == nil {
					t.Errorf("no %s %s", kind, name)
				}
			}
			if find(out.Objects, "Service", n+"-headless") == nil {
				t.Errorf("no headless Service")
			}
			for _, o := range out.Objects {
				l := o.GetLabels()
				if l["app.kubernetes.io/managed-by"] != "warren" || l["warren.dev/cluster"] != n {
					t.Errorf("%s %s lacks warren's labels: %v", o.GetKind(), o.GetName(), l)
				}
				if o.GetKind() != "Namespace" && o.GetNamespace() != ns {
					t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
				}
			}
		})
	}
}

// The policy decides the host namespace's Pod Security level and whether
// it is isolated; the syncer is told the same level.
func TestPolicyShapesTheHostNamespace(t *testing.T) {
	outs := renderDir(t, exampleFleet, render.Options{})
	for _, out := range outs {
		want := "restricted"
		if strings.HasPrefix(out.Cluster, "search") {
			want = "baseline"
		}
		nsObj := find(out.Objects, "Namespace", "vc-"+out.Cluster)
		if got := nsObj.GetLabels()["pod-security.kubernetes.io/enforce"]; got != want {
			t.Errorf("%s: enforce=%q, want %q", out.Cluster, got, want)
		}
		sts := find(out.Objects, "StatefulSet", out.Cluster)
		if !slices.Contains(args(container(t, sts, "syncer")), "--pod-security="+want) {
			t.Errorf("%s: syncer not told --pod-security=%s", out.Cluster, want)
		}
	}

	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy + "  networkIsolation: false\n  podSecurity: baseline\n",
		"clusters/a.yaml": fleettest.Cluster("a"),
	})
	out := renderDir(t, root, render.Options{})[0]
	for _, o := range out.Objects {
		if o.GetKind() == "NetworkPolicy" {
			t.Errorf("isolation is off but %s was rendered", o.GetName())
		}
	}
}

// What a definition asks for shows up in what is rendered: quota, access
// bindings for inside the cluster, exposure, sync options, pausing.
func TestSpecDrivesTheRender(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, everyOption)
	outs := renderDir(t, root, render.Options{})
	a, b := outs[0], outs[1]

	sts := find(a.Objects, "StatefulSet", "a")
	if r, _, _ := unstructured.NestedInt64(sts.Object, "spec", "replicas"); r != 0 {
		t.Errorf("paused cluster has %d replicas", r)
	}
	hard, _, _ := unstructured.NestedStringMap(find(a.Objects, "ResourceQuota", "a").Object, "spec", "hard")
	if hard["requests.cpu"] != "2250m" || hard["pods"] != "11" || hard["requests.memory"] != "" {
		t.Errorf("quota %v: want the tenant's 2 CPUs and 10 pods plus the control plane's own, nothing else", hard)
	}
	ing := find(a.Objects, "Ingress", "a")
	if host, _, _ := unstructured.NestedString(ing.Object, "spec", "rules", "0", "host"); ing == nil {
		t.Fatal("no Ingress")
	} else if rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules"); rules[0].(map[string]any)["host"] != "a.example.com" {
		t.Errorf("ingress host %v %s", rules, host)
	}
	if cls, _, _ := unstructured.NestedString(ing.Object, "spec", "ingressClassName"); cls != "nginx" {
		t.Errorf("ingressClassName %q", cls)
	}
	cr := find(a.Objects, "ClusterRole", "warren-vc-a-syncer")
	if cr == nil {
		t.Fatal("real nodes and storage classes need a read-only ClusterRole")
	}
	rules, _, _ := unstructured.NestedSlice(cr.Object, "rules")
	if len(rules) != 2 {
		t.Errorf("ClusterRole rules %v: want nodes and storageclasses", rules)
	}
	role := find(a.Objects, "Role", "a-syncer")
	roleRules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	if last := roleRules[len(roleRules)-1].(map[string]any); !slices.Contains(last["resources"].([]any), any("ingresses")) {
		t.Errorf("syncing ingresses did not add ingress rights: %v", last)
	}
	cm := find(a.Objects, "ConfigMap", "a-init-manifests")
	access, _, _ := unstructured.NestedString(cm.Object, "data", "00-access.yaml")
	if !strings.Contains(access, "name: warren-access-view") || !strings.Contains(access, "name: auditors") || !strings.Contains(access, "namespace: default") {
		t.Errorf("access bindings:\n%s", access)
	}
	syncer := args(container(t, sts, "syncer"))
	for _, want := range []string{"--sync-ingresses=true", "--sync-storage-classes=true", "--sync-node-ports=true", "--sync-load-balancers=true", "--nodes=real"} {
		if !slices.Contains(syncer, want) {
			t.Errorf("syncer lacks %s", want)
		}
	}

	bsts := find(b.Objects, "StatefulSet", "b")
	for c, image := range map[string]string{
		"kube-apiserver":          "registry.k8s.io/kube-apiserver:v1.34.1",
		"kube-controller-manager": "registry.k8s.io/kube-controller-manager:v1.34.1",
		"etcd":                    "registry.k8s.io/etcd:3.5.21-0",
		"syncer":                  render.DefaultSyncerImage,
	} {
		if got := container(t, bsts, c)["image"]; got != image {
			t.Errorf("%s image %v, want %s", c, got, image)
		}
	}
	if !slices.Contains(args(container(t, bsts, "kube-apiserver")), "--endpoint-reconciler-type=none") {
		t.Error("kube-apiserver keeps its endpoint reconciler")
	}
	bcm := find(b.Objects, "ConfigMap", "b-init-manifests")
	if dns, _, _ := unstructured.NestedString(bcm.Object, "data", "10-coredns.yaml"); !strings.Contains(dns, "kind: Deployment") {
		t.Error("the k8s distro gets no CoreDNS")
	}
	svc := find(b.Objects, "Service", "b")
	if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "LoadBalancer" {
		t.Errorf("service type %s", typ)
	}
	// b may not have node ports or load balancers of its own: the host holds
	// it to the one of each its API Service takes.
	bhard, _, _ := unstructured.NestedStringMap(find(b.Objects, "ResourceQuota", "b").Object, "spec", "hard")
	if bhard["services.nodeports"] != "1" || bhard["services.loadbalancers"] != "1" {
		t.Errorf("quota %v: want one node port and one load balancer, for the API Service", bhard)
	}
	if slices.Contains(args(container(t, bsts, "syncer")), "--sync-node-ports=true") {
		t.Error("b's syncer may open node ports")
	}
}

// everyOption is a repository whose two clusters switch on every component:
// k3s and k8s, real nodes, storage classes, ingresses, each expose type but
// NodePort (the example fleet has it), access grants and pausing.
var everyOption = fleettest.Files{
	"policies/p.yaml": `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: open
spec:
  tenant: team-a
  maxClusters: 5
  distros: [{name: k3s}, {name: k8s}]
  sync: {ingresses: true, storageClasses: true, nodePorts: true, loadBalancers: true, realNodes: true}
  expose: {types: [NodePort, LoadBalancer, Ingress], hosts: ["*.example.com"]}
  grants:
  - clusterRoles: ["*"]
    subjects: [{kind: Group, name: "*"}, {kind: ServiceAccount, name: "*"}]
`,
	"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: a
spec:
  tenant: team-a
  paused: true
  resources: {cpu: "2", pods: 10}
  sync: {ingresses: true, storageClasses: true, nodePorts: true, loadBalancers: true, nodes: real}
  expose: {type: Ingress, host: a.example.com, ingressClassName: nginx}
  access:
  - clusterRole: view
    subjects: [{kind: Group, name: auditors}, {kind: ServiceAccount, name: ci, namespace: default}]
`,
	"clusters/b.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: b
spec:
  tenant: team-a
  distro: k8s
  version: v1.34.1
  expose: {type: LoadBalancer}
`,
}

// The repository's templates/ overlay is layered over warren's base for
// every cluster; what it adds still gets warren's namespace and labels.
func TestRepositoryOverlayIsLayeredLast(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy,
		"clusters/a.yaml": fleettest.Cluster("a"),
		"templates/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- team-notes.yaml
patches:
- target:
    kind: StatefulSet
  patch: |-
    - op: add
      path: /spec/template/spec/priorityClassName
      value: tenant-control-planes
`,
		"templates/team-notes.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: team-notes
data:
  owner: platform
`,
	})
	out := renderDir(t, root, render.Options{})[0]
	sts := find(out.Objects, "StatefulSet", "a")
	if pc, _, _ := unstructured.NestedString(sts.Object, "spec", "template", "spec", "priorityClassName"); pc != "tenant-control-planes" {
		t.Errorf("overlay patch not applied: priorityClassName %q", pc)
	}
	notes := find(out.Objects, "ConfigMap", "team-notes")
	if notes == nil {
		t.Fatal("overlay resource not rendered")
	}
	if notes.GetNamespace() != "vc-a" || notes.GetLabels()["warren.dev/cluster"] != "a" {
		t.Errorf("overlay resource lacks warren's namespace or labels: %s %v", notes.GetNamespace(), notes.GetLabels())
	}
}

// A broken overlay is an error naming templates/, not a silent skip.
func TestBrokenOverlayIsAnError(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy,
		"clusters/a.yaml": fleettest.Cluster("a"),
		"templates/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- missing.yaml
`,
	})
	repo, _, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	admitted, _ := policy.Admit(repo, policy.Options{})
	_, err = render.Fleet(repo, admitted, render.Options{})
	if err == nil || !strings.Contains(err.Error(), "templates/ overlay") {
		t.Fatalf("err = %v", err)
	}
}

// The service CIDR must be a network, not a typo.
func TestServiceCIDRIsChecked(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{"policies/p.yaml": fleettest.Policy, "clusters/a.yaml": fleettest.Cluster("a")})
	repo, _, _ := load.Dir(root)
	admitted, _ := policy.Admit(repo, policy.Options{})
	for _, cidr := range []string{"10.96.0.1/16", "not-a-cidr"} {
		if _, err := render.Fleet(repo, admitted, render.Options{ServiceCIDR: cidr}); err == nil {
			t.Errorf("service CIDR %q accepted", cidr)
		}
	}
}

// The virtual API server takes the host's node-port range, so that a
// virtual NodePort Service can hold its host twin's ports; a host on the
// default range renders no flag, and a malformed range is an error.
func TestNodePortRangeFollowsTheHost(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, everyOption)
	const flag = "--service-node-port-range=31000-31999"
	outs := renderDir(t, root, render.Options{NodePortRange: "31000-31999"})
	k3s := args(container(t, find(outs[0].Objects, "StatefulSet", "a"), "k3s"))
	k8s := args(container(t, find(outs[1].Objects, "StatefulSet", "b"), "kube-apiserver"))
	if !slices.Contains(k3s, flag) || !slices.Contains(k8s, flag) {
		t.Errorf("want %s for k3s %v and kube-apiserver %v", flag, k3s, k8s)
	}
	for _, out := range renderDir(t, root, render.Options{NodePortRange: render.DefaultNodePortRange}) {
		for _, o := range out.Objects {
			if o.GetKind() != "StatefulSet" {
				continue
			}
			for _, c := range []string{"k3s", "kube-apiserver"} {
				if cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers"); hasContainer(cs, c) {
					for _, a := range args(container(t, o, c)) {
						if strings.HasPrefix(a, "--service-node-port-range") {
							t.Errorf("%s on the default range has %s", c, a)
						}
					}
				}
			}
		}
	}
	repo, _, _ := load.Dir(root)
	admitted, _ := policy.Admit(repo, policy.Options{})
	for _, r := range []string{"30000", "32767-30000", "0-100", "30000-70000", "a-b"} {
		if _, err := render.Fleet(repo, admitted, render.Options{NodePortRange: r}); err == nil || !strings.Contains(err.Error(), "node-port range") {
			t.Errorf("node-port range %q: err %v", r, err)
		}
	}
}

func hasContainer(cs []any, name string) bool {
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return true
		}
	}
	return false
}

// The reconciler renders several clusters at once: the same clusters
// rendered concurrently come out as they do one at a time.
func TestClustersRenderConcurrently(t *testing.T) {
	repo, problems, err := load.Dir(exampleFleet)
	if err != nil || len(problems) > 0 {
		t.Fatal(err, problems)
	}
	admitted, _ := policy.Admit(repo, policy.Options{})
	want, err := render.Fleet(repo, admitted, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]*render.Output, len(admitted)*4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			out, err := render.Cluster(render.InputFor(admitted[i%len(admitted)], repo), render.Options{})
			if err != nil {
				t.Error(err)
			}
			got[i] = out
		})
	}
	wg.Wait()
	for i, out := range got {
		w := want[slices.IndexFunc(want, func(o *render.Output) bool { return o.Cluster == out.Cluster })]
		if !bytes.Equal(stream(t, []*render.Output{out}), stream(t, []*render.Output{w})) {
			t.Errorf("render %d of %s differs from the sequential one", i, out.Cluster)
		}
	}
}
