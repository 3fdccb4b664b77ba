// Package synctest runs table tests of synced kinds against fake virtual and
// host clients, in vcluster's RunTests shape: each case gives the initial
// virtual and host objects, the request to reconcile, and the virtual and
// host objects expected afterwards (and the events the tenant is told).
//
// It is imported by tests only and must never be imported by the shipped
// binaries. It compares what a user would see (names, labels, annotations,
// owners, spec, data and status), not bookkeeping such as resource versions.
package synctest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// Cluster and HostNamespace name the virtual cluster every case runs in.
const (
	Cluster       = "demo"
	HostNamespace = "vc-demo"
)

// Names is the translator of that cluster.
var Names = translate.Translator{Cluster: Cluster, HostNamespace: HostNamespace}

// Case is one table row.
type Case struct {
	Name   string
	Config config.Config // the syncer's flags (Name and HostNamespace are set)

	InitialVirtual []client.Object
	InitialHost    []client.Object
	// Request is what is reconciled (twice: the second round must keep
	// the expected state).
	Request types.NamespacedName

	// ExpectedVirtual and ExpectedHost are, on each side and for every kind
	// the case names anywhere, all objects of that kind afterwards.
	ExpectedVirtual []client.Object
	ExpectedHost    []client.Object
	// Events are words each of which some recorded event must contain.
	Events []string
}

// Reconciler makes the controller under test from the Pair.
type Reconciler func(p *syncer.Pair) reconcile.Reconciler

// Run runs each case as a subtest.
func Run(t *testing.T, newReconciler Reconciler, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { c.run(t, newReconciler) })
	}
}

func (c Case) run(t *testing.T, newReconciler Reconciler) {
	cfg := c.Config
	cfg.Name, cfg.HostNamespace = Cluster, HostNamespace
	recorder := events.NewFakeRecorder(100)
	virtual := NewVirtual(copies(c.InitialVirtual)...)
	host := NewHost(copies(c.InitialHost)...)
	p := &syncer.Pair{
		Config: &cfg, Names: Names, Events: recorder,
		Virtual: virtual, VirtualReader: virtual, Host: host, HostReader: host,
	}
	r := newReconciler(p)
	for round := range 2 {
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: c.Request}); err != nil {
			t.Fatalf("round %d: %v", round+1, err)
		}
	}
	all := slices.Concat(c.InitialVirtual, c.InitialHost, c.ExpectedVirtual, c.ExpectedHost)
	compare(t, "virtual", virtual, c.ExpectedVirtual, all)
	compare(t, "host", host, c.ExpectedHost, all)
	checkEvents(t, recorder, c.Events)
}

func copies(objs []client.Object) []client.Object {
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.DeepCopyObject().(client.Object))
	}
	return out
}

// scheme knows every built-in kind.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// statusKinds have a status subresource, as on a real API server.
var statusKinds = []client.Object{
	&corev1.Pod{}, &corev1.Service{}, &corev1.PersistentVolumeClaim{}, &corev1.Node{}, &networkingv1.Ingress{},
}

// NewVirtual is a fake virtual API with the indexes the syncer registers
// (every pod counts as accepted).
func NewVirtual(objs ...client.Object) client.WithWatch {
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(statusKinds...)
	accept := func(*corev1.Pod) bool { return true }
	for index, kind := range map[string]string{syncer.PodConfigMapIndex: "ConfigMap", syncer.PodSecretIndex: "Secret"} {
		b = b.WithIndex(&corev1.Pod{}, index, syncer.PodRefIndex(kind, accept))
	}
	b = b.WithIndex(&corev1.Pod{}, syncer.PodNodeIndex, syncer.PodNodeIndexer)
	return b.WithIndex(&networkingv1.Ingress{}, syncer.IngressSecretIndex, syncer.IngressRefIndex).Build()
}

// NewHost is a fake host API.
func NewHost(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(statusKinds...).Build()
}

// compare checks that, for every kind the case names anywhere, the objects
// of that kind on this side are exactly the expected ones.
func compare(t *testing.T, side string, c client.Client, expected, all []client.Object) {
	t.Helper()
	for gvk, objs := range byKind(t, all, expected) {
		list, err := scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err != nil {
			t.Fatalf("no list type for %s: %v", gvk, err)
		}
		if err := c.List(context.Background(), list.(client.ObjectList)); err != nil {
			t.Fatalf("listing %s %s: %v", side, gvk.Kind, err)
		}
		items, err := meta(list)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := render(t, items), render(t, objs); got != want {
			t.Errorf("%s %s objects differ.\n--- got:\n%s\n--- want:\n%s", side, gvk.Kind, got, want)
		}
	}
}

// byKind groups expected objects by kind, with an empty group for every
// kind only the initial state has (all of those must be gone).
func byKind(t *testing.T, all, expected []client.Object) map[schema.GroupVersionKind][]runtime.Object {
	t.Helper()
	out := map[schema.GroupVersionKind][]runtime.Object{}
	for _, o := range all {
		out[gvkOf(t, o)] = nil
	}
	for _, o := range expected {
		gvk := gvkOf(t, o)
		out[gvk] = append(out[gvk], o)
	}
	return out
}

func gvkOf(t *testing.T, o runtime.Object) schema.GroupVersionKind {
	t.Helper()
	gvk, err := apiutil.GVKForObject(o, scheme)
	if err != nil {
		t.Fatalf("kind of %T: %v", o, err)
	}
	return gvk
}

func meta(list runtime.Object) ([]runtime.Object, error) {
	items := reflect.ValueOf(list).Elem().FieldByName("Items")
	if !items.IsValid() {
		return nil, fmt.Errorf("%T has no items", list)
	}
	out := make([]runtime.Object, 0, items.Len())
	for i := range items.Len() {
		out = append(out, items.Index(i).Addr().Interface().(runtime.Object))
	}
	return out, nil
}

// render is the objects as a user would compare them: sorted by
// namespace/name, without bookkeeping fields, as YAML.
func render(t *testing.T, objs []runtime.Object) string {
	t.Helper()
	objs = slices.Clone(objs)
	slices.SortFunc(objs, func(a, b runtime.Object) int {
		return strings.Compare(client.ObjectKeyFromObject(a.(client.Object)).String(), client.ObjectKeyFromObject(b.(client.Object)).String())
	})
	var docs []string
	for _, o := range objs {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		delete(u, "apiVersion")
		delete(u, "kind")
		if m, ok := u["metadata"].(map[string]any); ok {
			for _, k := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"} {
				delete(m, k)
			}
		}
		if s, ok := u["status"].(map[string]any); ok {
			dropConditionTimes(s)
			if len(s) == 0 {
				delete(u, "status")
			}
		}
		y, err := yaml.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(y))
	}
	return strings.Join(docs, "---\n")
}

// dropConditionTimes removes the clock from conditions: when a condition
// last changed depends on when the test ran.
func dropConditionTimes(status map[string]any) {
	conditions, _ := status["conditions"].([]any)
	for _, c := range conditions {
		if m, ok := c.(map[string]any); ok {
			for _, k := range []string{"lastTransitionTime", "lastProbeTime", "lastHeartbeatTime", "lastUpdateTime"} {
				delete(m, k)
			}
		}
	}
}

func checkEvents(t *testing.T, recorder *events.FakeRecorder, words []string) {
	t.Helper()
	var seen []string
	for len(recorder.Events) > 0 {
		seen = append(seen, <-recorder.Events)
	}
	for _, w := range words {
		if !slices.ContainsFunc(seen, func(e string) bool { return strings.Contains(e, w) }) {
			t.Errorf("no event says %q; events: %q", w, seen)
		}
	}
}

// Twin makes h the host twin of the virtual object v of kind, as the
// syncer would: its host name and namespace, v's labels, and the ownership
// labels and annotations.
func Twin[T client.Object](kind string, v client.Object, h T) T {
	h.SetName(Names.HostName(v.GetNamespace(), v.GetName()))
	h.SetNamespace(HostNamespace)
	labels := translate.HostLabels(v.GetLabels())
	for k, val := range h.GetLabels() {
		labels[k] = val
	}
	h.SetLabels(labels)
	Names.Mark(h, translate.Origin{Kind: kind, Namespace: v.GetNamespace(), Name: v.GetName(), UID: string(v.GetUID())})
	return h
}

// Foreign is h under the host name of the virtual object v, without any
// ownership mark: an object the syncer must never touch.
func Foreign[T client.Object](v client.Object, h T) T {
	h.SetName(Names.HostName(v.GetNamespace(), v.GetName()))
	h.SetNamespace(HostNamespace)
	return h
}
