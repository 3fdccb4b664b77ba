package kubeconfige2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/warren-dev/warren/test/localkube"
)

type metaLocalRef = meta.LocalObjectReference

// fastRetries keeps a failed reconcile's retry quick in tests.
func fastRetries() fluxcontroller.RateLimiterOptions {
	return fluxcontroller.RateLimiterOptions{MinRetryDelay: 200 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
}

// writeRequests sums the API server's apiserver_request_total for every verb
// that writes, on the given resources' main endpoint (subresources such as
// status left out), read from its own /metrics.
func writeRequests(t *testing.T, plane *localkube.Plane, resources ...string) float64 {
	t.Helper()
	counts, err := plane.RequestCounts(t.Context(), func(l map[string]string) (string, bool) {
		return "", localkube.IsWriteVerb(l["verb"]) && l["subresource"] == "" && slices.Contains(resources, l["resource"])
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts[""]
}

// installWarren applies config/default (CRDs, the reconciler's
// ServiceAccount and documented rights, its Deployment) as
// `kubectl apply --server-side -k config/default` would, and waits until the
// CRDs are served. (The Deployment's pod is only simulated by kwok; the test
// runs the reconciler in-process with that ServiceAccount's rights.)
func installWarren(t *testing.T, ctx context.Context, plane *localkube.Plane) {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "../../../config/default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	dyn := dynamic.NewForConfigOrDie(plane.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(plane.Config)))
	var crds []string
	for _, res := range resources.Resources() {
		body, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(body); err != nil {
			t.Fatal(err)
		}
		m, err := mapper.RESTMapping(obj.GroupVersionKind().GroupKind(), obj.GroupVersionKind().Version)
		if err != nil {
			t.Fatalf("%s: %v", obj.GetKind(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if obj.GetNamespace() != "" {
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		force := true
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "kubectl", Force: &force}); err != nil {
			t.Fatalf("applying %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		if obj.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, obj.GetName())
		}
	}
	if len(crds) == 0 {
		t.Fatal("config/default holds no CRDs")
	}
	crdAPI := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range crds {
		deadline := time.Now().Add(30 * time.Second)
		for {
			crd, err := crdAPI.Get(ctx, name, metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
