package flux

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/warren-dev/warren/test/testkit"
)

// Flux's kinds, as tests address them.
var (
	GitRepositories = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	Kustomizations  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
)

// ReconcileRequestAnnotation is what `flux reconcile` and Flux's webhook
// Receiver set to make a controller reconcile an object now.
const ReconcileRequestAnnotation = "reconcile.fluxcd.io/requestedAt"

// Build runs kustomize on dir (a kustomization root on disk), as
// `kubectl apply -k` and kustomize-controller do.
func Build(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out
}

// Apply server-side applies objs to the API server cfg points at, as
// fieldManager, as `kubectl apply --server-side` would.
func Apply(t testing.TB, ctx context.Context, cfg *rest.Config, fieldManager string, objs ...*unstructured.Unstructured) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk.Kind, obj.GetName(), err)
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if obj.GetNamespace() != "" {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: fieldManager, Force: ptr.To(true)}); err != nil {
			t.Fatalf("applying %s %s/%s: %v", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// Dynamic is a client of a Flux kind in flux-system.
func Dynamic(cfg *rest.Config, gvr schema.GroupVersionResource) dynamic.ResourceInterface {
	return dynamic.NewForConfigOrDie(cfg).Resource(gvr).Namespace(Namespace)
}

// Reconcile asks Flux to reconcile an object (in flux-system) now, as `flux reconcile` or a
// Git host's push webhook through Flux's Receiver does, and waits until
// the controller has handled that request and the object is Ready.
func Reconcile(t testing.TB, cfg *rest.Config, gvr schema.GroupVersionResource, name string, timeout time.Duration) *unstructured.Unstructured {
	t.Helper()
	namespace, ri := Namespace, Dynamic(cfg, gvr)
	token := time.Now().Format(time.RFC3339Nano)
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, ReconcileRequestAnnotation, token)
	if _, err := ri.Patch(t.Context(), name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "flux-cli"}); err != nil {
		t.Fatalf("requesting a reconcile of %s %s/%s: %v", gvr.Resource, namespace, name, err)
	}
	var obj *unstructured.Unstructured
	testkit.Eventually(t, timeout, fmt.Sprintf("%s %s/%s to handle reconcile request %s and be Ready", gvr.Resource, namespace, name, token), func() (bool, string) {
		var err error
		if obj, err = ri.Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		handled, _, _ := unstructured.NestedString(obj.Object, "status", "lastHandledReconcileAt")
		status, msg := Condition(obj, "Ready")
		return handled == token && status == "True", status + ": " + msg
	})
	return obj
}

// WaitReady waits until a Flux object's (in flux-system) Ready condition is True for its
// current generation, and returns it.
func WaitReady(t testing.TB, cfg *rest.Config, gvr schema.GroupVersionResource, name string, timeout time.Duration) *unstructured.Unstructured {
	t.Helper()
	namespace, ri := Namespace, Dynamic(cfg, gvr)
	var obj *unstructured.Unstructured
	testkit.Eventually(t, timeout, fmt.Sprintf("%s %s/%s Ready", gvr.Resource, namespace, name), func() (bool, string) {
		var err error
		if obj, err = ri.Get(t.Context(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		observed, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
		status, msg := Condition(obj, "Ready")
		return status == "True" && observed == obj.GetGeneration(), status + ": " + msg
	})
	return obj
}

// Condition is the status and message of a condition of an object's
// status.conditions ("" when absent).
func Condition(obj *unstructured.Unstructured, condType string) (status, message string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == condType {
			s, _ := m["status"].(string)
			msg, _ := m["message"].(string)
			return s, msg
		}
	}
	return "", ""
}

// Inventory lists the entries of a Kustomization's status.inventory
// (namespace_name_group_kind ids, as kustomize-controller writes them).
func Inventory(obj *unstructured.Unstructured) []string {
	entries, _, _ := unstructured.NestedSlice(obj.Object, "status", "inventory", "entries")
	var ids []string
	for _, e := range entries {
		m, _ := e.(map[string]any)
		if id, ok := m["id"].(string); ok {
			ids = append(ids, id)
		}
	}
	return ids
}
