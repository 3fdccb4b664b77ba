package apply

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/test/localkube"
)

// One host plane serves every test in this file; each test uses its own
// Fleet and namespaces, so they do not see each other's objects.
var host *localkube.Plane

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() || os.Getenv("WARREN_SKIP_PLANE") != "" {
			return m.Run()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p, err := localkube.Start(ctx, localkube.Options{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "starting a local control plane: %v\n", err)
			return 1
		}
		defer func() { _ = p.Stop() }()
		host = p
		return m.Run()
	}()
	os.Exit(code)
}

type fixture struct {
	t       *testing.T
	ctx     context.Context
	client  client.Client
	kube    kubernetes.Interface
	applier *Applier
	inv     *Inventory
}

func newFixture(t *testing.T, fleet string) *fixture {
	t.Helper()
	if host == nil {
		t.Skip("needs a local control plane (not in -short mode)")
	}
	c, err := client.New(host.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(c, Owner{Namespace: "warren-system", Name: fleet}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: t.Context(), client: c, kube: kubernetes.NewForConfigOrDie(host.Config), applier: a}
}

// apply applies the YAML documents and keeps the inventory for the next call.
func (f *fixture) apply(docs ...string) *Result {
	f.t.Helper()
	res, err := f.applier.Apply(f.ctx, objects(f.t, docs...), f.inv)
	if err != nil {
		f.t.Fatalf("apply: %v", err)
	}
	f.inv = res.Inventory
	return res
}

func objects(t testing.TB, docs ...string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			t.Fatalf("bad test YAML: %v\n%s", err, d)
		}
		out = append(out, u)
	}
	return out
}

func namespace(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {warren.dev/cluster: %s}\n", name, name)
}

func configMap(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {warren.dev/cluster: %s}\ndata:\n  value: %q\n", name, ns, ns, value)
}

func service(ns, name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  ports: [{name: https, port: 443, targetPort: 6443}]
  selector: {app: %s}
`, name, ns, name)
}

func statefulSet(ns, name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: %s
  namespace: %s
spec:
  serviceName: %s
  replicas: 1
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      containers: [{name: k3s, image: rancher/k3s:v1.33.1-k3s1}]
`, name, ns, name, name, name)
}

func (f *fixture) configMapValue(ns, name string) (string, string) {
	f.t.Helper()
	cm, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get ConfigMap %s/%s: %v", ns, name, err)
	}
	return cm.Data["value"], cm.ResourceVersion
}

// editByHand changes a ConfigMap's value as kubectl edit would.
func (f *fixture) editByHand(ns, name string) {
	f.t.Helper()
	cm, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	cm.Data["value"] = "changed by hand"
	if _, err := f.kube.CoreV1().ConfigMaps(ns).Update(f.ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		f.t.Fatal(err)
	}
}

func actions(res *Result) map[string]Action {
	out := map[string]Action{}
	for _, c := range res.Changes {
		out[c.Object.String()] = c.Action
	}
	return out
}

// writeRequests sums apiserver_request_total for every verb that writes
// (dry runs included) on the given resources, subresources included, read
// from the API server's own /metrics.
func writeRequests(t testing.TB, resources ...string) float64 {
	t.Helper()
	counts, err := host.RequestCounts(t.Context(), func(l map[string]string) (string, bool) {
		return "", localkube.IsWriteVerb(l["verb"]) && slices.Contains(resources, l["resource"])
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts[""]
}

// A cluster's objects are created in stages (its namespace first), and a
// second reconcile of the same objects finds them by listing and writes
// nothing at all: not an apply, not a dry run.
func TestANoOpReconcileMakesNoWrites(t *testing.T) {
	f := newFixture(t, "noop")
	docs := []string{
		configMap("noop-a", "settings", "1"),
		service("noop-a", "api"),
		statefulSet("noop-a", "api"),
		namespace("noop-a"),
	}
	resources := []string{"namespaces", "configmaps", "services", "statefulsets"}
	cold := writeRequests(t, resources...)
	first := f.apply(docs...)
	if writeRequests(t, resources...) <= cold {
		t.Fatal("the first apply made no write the metric counts; the count below would prove nothing")
	}
	if got := actions(first)["Namespace/noop-a"]; got != Created {
		t.Fatalf("namespace: %s, want created; changes %v", got, first.Changes)
	}
	if first.Written() != 4 || len(f.inv.Entries) != 4 {
		t.Fatalf("first apply wrote %d objects, inventory %d; want 4 and 4", first.Written(), len(f.inv.Entries))
	}

	before := writeRequests(t, resources...)
	second := f.apply(docs...)
	after := writeRequests(t, resources...)
	if second.Written() != 0 {
		t.Fatalf("second apply wrote %d objects: %v", second.Written(), second.Changes)
	}
	if after != before {
		t.Fatalf("a no-op reconcile made %v write requests to the API server", after-before)
	}
}

// Someone edits a ConfigMap and deletes a Service by hand: the next
// reconcile sets the ConfigMap back and recreates the Service, and leaves
// the untouched objects alone (same resourceVersion).
func TestDriftIsSetBack(t *testing.T) {
	f := newFixture(t, "drift")
	docs := []string{namespace("drift-a"), configMap("drift-a", "settings", "1"), configMap("drift-a", "other", "x"), service("drift-a", "api")}
	f.apply(docs...)
	_, otherRV := f.configMapValue("drift-a", "other")

	f.editByHand("drift-a", "settings")
	if err := f.kube.CoreV1().Services("drift-a").Delete(f.ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	res := f.apply(docs...)
	got := actions(res)
	if got["ConfigMap/drift-a/settings"] != Configured || got["Service/drift-a/api"] != Created {
		t.Fatalf("changes %v; want settings configured and api created", res.Changes)
	}
	if v, _ := f.configMapValue("drift-a", "settings"); v != "1" {
		t.Fatalf("settings.value = %q, want it set back to 1", v)
	}
	if _, err := f.kube.CoreV1().Services("drift-a").Get(f.ctx, "api", metav1.GetOptions{}); err != nil {
		t.Fatalf("deleted Service not recreated: %v", err)
	}
	if _, rv := f.configMapValue("drift-a", "other"); rv != otherRV {
		t.Fatalf("untouched ConfigMap was written: resourceVersion %s → %s", otherRV, rv)
	}
	if res.Written() != 2 {
		t.Fatalf("wrote %d objects, want 2: %v", res.Written(), res.Changes)
	}
}

// A change in Git to one object writes that object only.
func TestOnlyChangedObjectsAreWritten(t *testing.T) {
	f := newFixture(t, "change")
	f.apply(namespace("change-a"), configMap("change-a", "one", "1"), configMap("change-a", "two", "2"))
	_, twoRV := f.configMapValue("change-a", "two")
	res := f.apply(namespace("change-a"), configMap("change-a", "one", "1b"), configMap("change-a", "two", "2"))
	if res.Written() != 1 || actions(res)["ConfigMap/change-a/one"] != Configured {
		t.Fatalf("changes %v; want only one configured", res.Changes)
	}
	if v, _ := f.configMapValue("change-a", "one"); v != "1b" {
		t.Fatalf("one.value = %q", v)
	}
	if _, rv := f.configMapValue("change-a", "two"); rv != twoRV {
		t.Fatal("unchanged ConfigMap two was written")
	}
}

// Objects that exist and are someone else's — tracked by Flux, by Argo CD,
// created by hand, or owned by another Fleet — are reported per object and
// not written to; everything else is applied.
func TestForeignObjectsAreReportedAndUntouched(t *testing.T) {
	f := newFixture(t, "owner")
	ns := "foreign-a"
	f.apply(namespace(ns))
	foreign := map[string]*corev1.ConfigMap{
		"flux": {ObjectMeta: metav1.ObjectMeta{Name: "flux", Namespace: ns, Labels: map[string]string{
			"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}},
		"argo": {ObjectMeta: metav1.ObjectMeta{Name: "argo", Namespace: ns, Annotations: map[string]string{
			"argocd.argoproj.io/tracking-id": "apps:/ConfigMap:foreign-a/argo"}}},
		"hand": {ObjectMeta: metav1.ObjectMeta{Name: "hand", Namespace: ns}},
	}
	rvs := map[string]string{}
	for name, cm := range foreign {
		cm.Data = map[string]string{"value": "theirs"}
		created, err := f.kube.CoreV1().ConfigMaps(ns).Create(f.ctx, cm, metav1.CreateOptions{FieldManager: "someone"})
		if err != nil {
			t.Fatal(err)
		}
		rvs[name] = created.ResourceVersion
	}
	// Another Fleet's object in this namespace (that Fleet could not have
	// applied it here: the namespace is not its cluster's).
	if _, err := f.kube.CoreV1().ConfigMaps(ns).Create(f.ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns, Labels: map[string]string{
			v1alpha1.FleetNameLabel: "other-fleet", v1alpha1.FleetNamespaceLabel: "warren-system"}},
		Data: map[string]string{"value": "fleet b"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	res, err := f.applier.Apply(f.ctx, objects(t, namespace(ns),
		configMap(ns, "flux", "ours"), configMap(ns, "argo", "ours"), configMap(ns, "hand", "ours"),
		configMap(ns, "other", "ours"), configMap(ns, "free", "ours")), f.inv)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, c := range res.Conflicts {
		reasons[c.Object.Name] = c.Reason
	}
	for name, want := range map[string]string{
		"flux":  "managed by Flux (name=apps, namespace=flux-system)",
		"argo":  "managed by Argo CD (tracking-id apps:/ConfigMap:foreign-a/argo)",
		"hand":  "field managers: someone",
		"other": "owned by Fleet warren-system/other-fleet",
	} {
		if !strings.Contains(reasons[name], want) {
			t.Errorf("conflict for %s = %q, want it to say %q", name, reasons[name], want)
		}
	}
	if len(res.Conflicts) != 4 {
		t.Errorf("conflicts %v, want 4", res.Conflicts)
	}
	for name, rv := range rvs {
		v, now := f.configMapValue(ns, name)
		if v != "theirs" || now != rv {
			t.Errorf("foreign ConfigMap %s was written: value %q, resourceVersion %s → %s", name, v, rv, now)
		}
	}
	if v, _ := f.configMapValue(ns, "other"); v != "fleet b" {
		t.Errorf("other Fleet's ConfigMap overwritten: %q", v)
	}
	if v, _ := f.configMapValue(ns, "free"); v != "ours" {
		t.Errorf("free ConfigMap not applied: %q", v)
	}
	for _, e := range res.Inventory.Entries {
		for name := range reasons {
			if strings.Contains(e.ID, "_"+name+"_") {
				t.Errorf("conflicting object %s entered the inventory", e.ID)
			}
		}
	}
}

// A namespace that exists and is someone else's is a conflict, and nothing
// rendered into it is written either: not even objects that do not exist yet.
func TestNothingIsWrittenIntoAForeignNamespace(t *testing.T) {
	f := newFixture(t, "ns-owner")
	ns := "foreign-ns"
	created, err := f.kube.CoreV1().Namespaces().Create(f.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "infra", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}},
		metav1.CreateOptions{FieldManager: "kustomize-controller"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.applier.Apply(f.ctx, objects(t, namespace(ns), configMap(ns, "new", "ours"), namespace("free-ns")), f.inv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 2 || res.Conflicts[0].Object.Kind != "Namespace" || !strings.Contains(res.Conflicts[0].Reason, "managed by Flux") ||
		!strings.Contains(res.Conflicts[1].Reason, "in namespace foreign-ns, which is not this Fleet's") {
		t.Errorf("conflicts %v, want the namespace (Flux) and the ConfigMap inside it", res.Conflicts)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, "new", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap written into the foreign namespace (get: %v)", err)
	}
	now, err := f.kube.CoreV1().Namespaces().Get(f.ctx, ns, metav1.GetOptions{})
	if err != nil || now.ResourceVersion != created.ResourceVersion {
		t.Errorf("foreign namespace written to (err %v)", err)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(f.ctx, "free-ns", metav1.GetOptions{}); err != nil {
		t.Errorf("the free namespace was not applied: %v", err)
	}
}

// Removing objects from what is rendered deletes exactly those objects,
// and a stale object someone took over (labels removed) is left alone.
func TestPruneRemovesExactlyWhatIsGone(t *testing.T) {
	f := newFixture(t, "prune")
	ns := "prune-a"
	f.apply(namespace(ns), configMap(ns, "keep", "1"), configMap(ns, "gone", "2"), configMap(ns, "taken", "3"), service(ns, "api"))
	previous := f.inv

	cm, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, "taken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(cm.Labels, v1alpha1.FleetNameLabel)
	if _, err := f.kube.CoreV1().ConfigMaps(ns).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	f.apply(namespace(ns), configMap(ns, "keep", "1"))
	stale := Stale(previous, f.inv)
	if len(stale) != 3 {
		t.Fatalf("stale = %v, want gone, taken and api", stale)
	}
	res, err := f.applier.Prune(f.ctx, stale)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 2 || len(res.Skipped) != 1 || res.Skipped[0].Name != "taken" {
		t.Fatalf("prune deleted %v, skipped %v", res.Deleted, res.Skipped)
	}
	if err := f.applier.WaitForDeletion(f.ctx, res.Deleted); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone"} {
		if _, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s still there: %v", name, err)
		}
	}
	if _, err := f.kube.CoreV1().Services(ns).Get(f.ctx, "api", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Service api still there: %v", err)
	}
	for _, name := range []string{"keep", "taken"} {
		if _, err := f.kube.CoreV1().ConfigMaps(ns).Get(f.ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap %s was deleted: %v", name, err)
		}
	}
}

// A CRD and an object of its kind can come in one apply: the CRD goes first
// and is established before the object is applied.
func TestCRDAndItsObjectInOneApply(t *testing.T) {
	// A new group and namespace each run, so that -count reruns on the same
	// plane still meet a kind the API server has never served.
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	f := newFixture(t, "crd-"+run)
	group, ns := "t"+run+".warren.dev", "crd-"+run
	crd := `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.` + group + `
spec:
  group: ` + group + `
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
`
	widget := "apiVersion: " + group + "/v1\nkind: Widget\nmetadata: {name: w, namespace: " + ns + "}\nspec: {size: 3}\n"
	res := f.apply(widget, crd, namespace(ns))
	if res.Written() != 3 {
		t.Fatalf("changes %v, want 3 created", res.Changes)
	}
	again := f.apply(widget, crd, namespace(ns))
	if again.Written() != 0 {
		t.Fatalf("second apply wrote %v", again.Changes)
	}
}

// The reconciler stopped mid-apply, before it recorded its inventory: a
// restart with no inventory takes back its own labelled objects without
// duplicating anything, and reports the ones no longer rendered as
// untracked so they can be pruned.
func TestRestartWithoutInventoryConverges(t *testing.T) {
	f := newFixture(t, "restart")
	ns := "restart-a"
	f.apply(namespace(ns), configMap(ns, "one", "1"), configMap(ns, "two", "2"))

	f.inv = nil // the inventory was never written
	res := f.apply(namespace(ns), configMap(ns, "one", "1"))
	if len(res.Conflicts) != 0 {
		t.Fatalf("own objects reported as conflicts: %v", res.Conflicts)
	}
	if len(f.inv.Entries) != 2 {
		t.Fatalf("inventory %v, want namespace and one", f.inv.Entries)
	}
	if len(res.Untracked) != 1 || !strings.Contains(res.Untracked[0].ID, "_two_") || res.Untracked[0].Cluster != ns {
		t.Fatalf("untracked = %v, want ConfigMap two", res.Untracked)
	}
	pr, err := f.applier.Prune(f.ctx, res.Untracked)
	if err != nil || len(pr.Deleted) != 1 {
		t.Fatalf("prune untracked: %+v %v", pr, err)
	}
	if again := f.apply(namespace(ns), configMap(ns, "one", "1")); again.Written() != 0 || len(again.Untracked) != 0 {
		t.Fatalf("after convergence: changes %v, untracked %v", again.Changes, again.Untracked)
	}
}

// A label warren set on a StatefulSet is changed by hand (metadata only: the
// generation stays): it is still found and set back. A controller writing
// a Service's status is not drift: nothing is written for it.
func TestMetadataEditIsDriftButStatusIsNot(t *testing.T) {
	f := newFixture(t, "meta")
	ns := "meta-a"
	docs := []string{namespace(ns), statefulSet(ns, "api"), service(ns, "api")}
	f.apply(docs...)

	sts, err := f.kube.AppsV1().StatefulSets(ns).Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sts.Labels[v1alpha1.ManagedByLabel] = "someone-else"
	if _, err := f.kube.AppsV1().StatefulSets(ns).Update(f.ctx, sts, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	svc, err := f.kube.CoreV1().Services(ns).Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.Conditions = []metav1.Condition{{Type: "Probed", Status: metav1.ConditionTrue, Reason: "Test", LastTransitionTime: metav1.Now()}}
	if _, err := f.kube.CoreV1().Services(ns).UpdateStatus(f.ctx, svc, metav1.UpdateOptions{FieldManager: "some-controller"}); err != nil {
		t.Fatal(err)
	}

	res := f.apply(docs...)
	got := actions(res)
	if got["StatefulSet/meta-a/api"] != Configured || got["Service/meta-a/api"] != Unchanged || res.Written() != 1 {
		t.Fatalf("changes %v; want the StatefulSet configured and nothing else", res.Changes)
	}
	sts, err = f.kube.AppsV1().StatefulSets(ns).Get(f.ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sts.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		t.Fatalf("label not set back: %v", sts.Labels)
	}
}

// One cluster renders an object the API server refuses: that cluster is
// named in the failures and keeps what it had (nothing of it would be
// pruned); the other cluster is applied all the same.
func TestABrokenClusterDoesNotHoldBackTheOthers(t *testing.T) {
	f := newFixture(t, "isolate")
	f.apply(namespace("iso-good"), namespace("iso-bad"), configMap("iso-bad", "settings", "1"))
	before := f.inv

	badService := "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  namespace: iso-bad\n  labels: {warren.dev/cluster: iso-bad}\nspec:\n  ports: [{port: 99999}]\n"
	res, err := f.applier.Apply(f.ctx, objects(t,
		namespace("iso-good"), configMap("iso-good", "settings", "1"),
		namespace("iso-bad"), configMap("iso-bad", "settings", "2"), badService), before)
	if err == nil {
		t.Fatal("apply with an invalid Service succeeded")
	}
	if len(res.Failures) != 1 || res.Failures[0].Cluster != "iso-bad" || !strings.Contains(err.Error(), "iso-bad") {
		t.Fatalf("failures %v (error %v), want only iso-bad", res.Failures, err)
	}
	if v, _ := f.configMapValue("iso-good", "settings"); v != "1" {
		t.Fatalf("the good cluster was not applied: %q", v)
	}
	if stale := Stale(before, res.Inventory); len(stale) != 0 {
		t.Fatalf("a failed apply would prune %v", stale)
	}
	if len(ForCluster(res.Inventory, "iso-good")) != 2 {
		t.Fatalf("inventory of iso-good: %v", ForCluster(res.Inventory, "iso-good"))
	}
}

// A cold start with many objects of one kind looks them up with a list
// instead of one get each; a foreign object among them is still found.
func TestForeignObjectFoundAmongManyNew(t *testing.T) {
	f := newFixture(t, "many")
	ns := "many-a"
	f.apply(namespace(ns))
	if _, err := f.kube.CoreV1().ConfigMaps(ns).Create(f.ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm-07", Namespace: ns, Labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps"}},
		Data:       map[string]string{"value": "theirs"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	docs := []string{namespace(ns)}
	for i := range 2 * listInsteadOfGet {
		docs = append(docs, configMap(ns, fmt.Sprintf("cm-%02d", i), "ours"))
	}
	res, err := f.applier.Apply(f.ctx, objects(t, docs...), f.inv)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Object.Name != "cm-07" || !strings.Contains(res.Conflicts[0].Reason, "Flux") {
		t.Fatalf("conflicts %v, want cm-07 managed by Flux", res.Conflicts)
	}
	if v, _ := f.configMapValue(ns, "cm-07"); v != "theirs" {
		t.Fatalf("foreign cm-07 overwritten: %q", v)
	}
	if res.Written() != 2*listInsteadOfGet-1 {
		t.Fatalf("wrote %d, want %d", res.Written(), 2*listInsteadOfGet-1)
	}
}

// A cluster's PKI Secret is made once, applied with the cluster's objects
// and never regenerated: later reconciles return the same CAs; once it is
// lost while the cluster's control plane is still there it is an error, not
// a new CA; once the control plane is gone too (the cluster was removed,
// whatever the inventory still says) the cluster made again gets new CAs; a
// foreign Secret of that name is a conflict.
func TestPKISecretIsMadeOnceAndNeverRegenerated(t *testing.T) {
	f := newFixture(t, "pki")
	ns := "pki-a"
	secret, bundle, err := f.applier.PKISecret(f.ctx, ns, "pki-a", f.inv)
	if err != nil {
		t.Fatal(err)
	}
	controlPlane := strings.Replace(statefulSet(ns, "pki-a"), "metadata:\n", "metadata:\n  labels: {warren.dev/cluster: pki-a}\n", 1)
	f.apply(namespace(ns), toYAML(t, secret), controlPlane)

	again, bundle2, err := f.applier.PKISecret(f.ctx, ns, "pki-a", f.inv)
	if err != nil {
		t.Fatal(err)
	}
	if string(bundle2.ServerCA.CertPEM) != string(bundle.ServerCA.CertPEM) {
		t.Fatal("the PKI was regenerated")
	}
	if res := f.apply(namespace(ns), toYAML(t, again), controlPlane); res.Written() != 0 {
		t.Fatalf("re-applying the same PKI Secret wrote %v", res.Changes)
	}
	// A second writer with CAs of its own (a former leader resuming with
	// the CAs it made before the Secret existed) is refused: the first
	// Secret written stands.
	other, err := pki.Generate("pki-a")
	if err != nil {
		t.Fatal(err)
	}
	rival := again.DeepCopy()
	for k, v := range other.SecretData() {
		if err := unstructured.SetNestedField(rival.Object, base64.StdEncoding.EncodeToString(v), "data", k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.applier.Apply(f.ctx, objects(t, namespace(ns), toYAML(t, rival), controlPlane), f.inv); err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Fatalf("a PKI Secret with other CAs over the live one: got %v, want it refused as immutable", err)
	}
	if _, live, err := f.applier.PKISecret(f.ctx, ns, "pki-a", f.inv); err != nil || string(live.ServerCA.CertPEM) != string(bundle.ServerCA.CertPEM) {
		t.Fatalf("the live PKI Secret changed (err %v): its CAs must never change", err)
	}

	if err := f.kube.CoreV1().Secrets(ns).Delete(f.ctx, pki.SecretName("pki-a"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.applier.PKISecret(f.ctx, ns, "pki-a", f.inv); err == nil || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("lost PKI Secret: got %v, want an error asking to restore it", err)
	}
	// The control plane goes too (the cluster was pruned by a reconcile
	// that stopped before recording it): f.inv still lists the Secret.
	if err := f.kube.AppsV1().StatefulSets(ns).Delete(f.ctx, "pki-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, fresh, err := f.applier.PKISecret(f.ctx, ns, "pki-a", f.inv)
	if err != nil {
		t.Fatalf("a removed cluster made again: %v, want new CAs", err)
	}
	if string(fresh.ServerCA.CertPEM) == string(bundle.ServerCA.CertPEM) {
		t.Fatal("the cluster made again has its old CA, which was deleted")
	}

	if _, err := f.kube.CoreV1().Secrets(ns).Create(f.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: pki.SecretName("other"), Namespace: ns},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var conflict *ConflictError
	if _, _, err := f.applier.PKISecret(f.ctx, ns, "other", f.inv); !errors.As(err, &conflict) {
		t.Fatalf("foreign PKI Secret: got %v, want a ConflictError", err)
	}
}

func toYAML(t testing.TB, u *unstructured.Unstructured) string {
	t.Helper()
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A cluster's objects go only into the namespace warren creates for that
// cluster: not into another cluster's namespace of the same Fleet, not into
// a namespace that is not rendered with them (one a person made, kube-system),
// and a cluster whose namespace is not warren's for it gets nothing written,
// cluster-wide objects included.
func TestNothingIsWrittenIntoANamespaceNotCreatedForTheCluster(t *testing.T) {
	f := newFixture(t, "ns-per-cluster")
	f.apply(namespace("nsc-a"), configMap("nsc-a", "settings", "a"))

	clusterRole := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: nsc-b-syncer\n  labels: {warren.dev/cluster: nsc-b}\nrules: []\n"
	intruder := strings.Replace(configMap("nsc-c", "intruder", "d"), "warren.dev/cluster: nsc-c", "warren.dev/cluster: nsc-d", 1)
	hijack := strings.Replace(namespace("nsc-a"), "warren.dev/cluster: nsc-a", "warren.dev/cluster: nsc-b", 1)
	res, err := f.applier.Apply(f.ctx, objects(t,
		hijack, strings.Replace(configMap("nsc-a", "settings", "b"), "warren.dev/cluster: nsc-a", "warren.dev/cluster: nsc-b", 1), clusterRole,
		namespace("nsc-c"), intruder,
		strings.Replace(configMap("kube-system", "quota", "d"), "warren.dev/cluster: kube-system", "warren.dev/cluster: nsc-d", 1),
	), f.inv)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, c := range res.Conflicts {
		reasons[c.Object.Kind+"/"+c.Object.Namespace+"/"+c.Object.Name] = c.Reason
	}
	for obj, want := range map[string]string{
		"Namespace//nsc-a":            `warren created it for cluster "nsc-a", not for "nsc-b"`,
		"ConfigMap/nsc-a/settings":    `in namespace nsc-a, which warren created for cluster "nsc-a"`,
		"ClusterRole//nsc-b-syncer":   `cluster "nsc-b"'s namespace nsc-a is not warren's for it`,
		"ConfigMap/nsc-c/intruder":    `in namespace nsc-c, which warren creates for cluster "nsc-c", not for "nsc-d"`,
		"ConfigMap/kube-system/quota": `in namespace kube-system, which warren does not create for cluster "nsc-d"`,
	} {
		if !strings.Contains(reasons[obj], want) {
			t.Errorf("conflict for %s = %q, want it to say %q", obj, reasons[obj], want)
		}
	}
	if len(res.Conflicts) != 5 {
		t.Errorf("conflicts %v, want 5", res.Conflicts)
	}
	if v, _ := f.configMapValue("nsc-a", "settings"); v != "a" {
		t.Errorf("cluster nsc-a's ConfigMap overwritten: %q", v)
	}
	ns, err := f.kube.CoreV1().Namespaces().Get(f.ctx, "nsc-a", metav1.GetOptions{})
	if err != nil || ns.Labels["warren.dev/cluster"] != "nsc-a" {
		t.Errorf("namespace nsc-a relabelled (err %v): %v", err, ns.Labels)
	}
	for _, get := range []func() error{
		func() error {
			_, err := f.kube.CoreV1().ConfigMaps("kube-system").Get(f.ctx, "quota", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := f.kube.CoreV1().ConfigMaps("nsc-c").Get(f.ctx, "intruder", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := f.kube.RbacV1().ClusterRoles().Get(f.ctx, "nsc-b-syncer", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); !apierrors.IsNotFound(err) {
			t.Errorf("an object was written where it may not be (get: %v)", err)
		}
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(f.ctx, "nsc-c", metav1.GetOptions{}); err != nil {
		t.Errorf("cluster nsc-c's own namespace was not created: %v", err)
	}
}

// namespaceReads counts the API server's GETs and LISTs of namespaces.
func namespaceReads(t testing.TB) map[string]float64 {
	t.Helper()
	counts, err := host.RequestCounts(t.Context(), func(l map[string]string) (string, bool) {
		return l["verb"], (l["verb"] == "GET" || l["verb"] == "LIST") && l["resource"] == "namespaces" && l["subresource"] == ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// A namespace warren has just created is active at once: a cold start of
// many clusters goes on to their objects without polling each new
// namespace's status (at thousands of clusters that polling was most of a
// cold start).
func TestNewNamespacesAreNotPolledBeforeTheirObjects(t *testing.T) {
	f := newFixture(t, "coldns")
	var docs []string
	const clusters = 40
	for i := range clusters {
		ns := fmt.Sprintf("coldns-%02d", i)
		docs = append(docs, namespace(ns), configMap(ns, "settings", "1"))
	}
	before := namespaceReads(t)
	res := f.apply(docs...)
	if n := len(ForCluster(res.Inventory, "coldns-00")); n != 2 {
		t.Fatalf("inventory of coldns-00 has %d entries, want 2", n)
	}
	after := namespaceReads(t)
	t.Logf("namespace reads: %v GET, %v LIST", after["GET"]-before["GET"], after["LIST"]-before["LIST"])
	// One list finds what this Fleet already owns, one looks the new
	// namespaces up at once; a status poll would add one per batch.
	if lists := after["LIST"] - before["LIST"]; lists > 2 {
		t.Fatalf("%v LISTs of every namespace while creating %d: their status was polled", lists, clusters)
	}
	for i := range clusters {
		if v, _ := f.configMapValue(fmt.Sprintf("coldns-%02d", i), "settings"); v != "1" {
			t.Fatalf("coldns-%02d/settings = %q", i, v)
		}
	}
}

// A namespace that was there before may be being deleted: its cluster
// waits for it, then fails naming it, and the other clusters are applied.
func TestAClusterWhoseNamespaceIsBeingDeletedFailsAlone(t *testing.T) {
	f := newFixture(t, "termns")
	held := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: termns-gone\n  labels: {warren.dev/cluster: termns-gone}\n  finalizers: [test.warren.dev/hold]\ndata:\n  value: \"1\"\n"
	f.apply(namespace("termns-ok"), namespace("termns-gone"), held)
	t.Cleanup(func() {
		_ = f.client.Patch(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: "termns-gone"}},
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
	})
	if err := f.kube.CoreV1().Namespaces().Delete(f.ctx, "termns-gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	short, err := New(f.client, Owner{Namespace: "warren-system", Name: "termns"}, Options{WaitTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res, err := short.Apply(f.ctx, objects(t,
		namespace("termns-ok"), configMap("termns-ok", "settings", "1"),
		namespace("termns-gone"), held, configMap("termns-gone", "settings", "1")), f.inv)
	if err == nil || len(res.Failures) != 1 || res.Failures[0].Cluster != "termns-gone" || !strings.Contains(err.Error(), "termns-gone") {
		t.Fatalf("failures %v (error %v), want termns-gone alone", res.Failures, err)
	}
	if v, _ := f.configMapValue("termns-ok", "settings"); v != "1" {
		t.Fatalf("the other cluster was not applied: %q", v)
	}
}
