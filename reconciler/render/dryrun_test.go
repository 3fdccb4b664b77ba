package render_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/localkube"
)

// Everything warren renders is accepted by a real API server: the example
// fleet and a repository switching on every component are applied with a
// server-side dry run to a local control plane whose service CIDR is the
// one render was given. Namespaces are created for real first, because a
// dry-run namespace does not exist for the objects inside it. The control
// plane pod each StatefulSet would create is dry-run too, so Pod Security
// admission judges it at the level the policy sets on its namespace.
func TestRenderedObjectsAreAcceptedByARealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{ServiceCIDR: "10.112.0.0/16"})
	o := render.Options{ServiceCIDR: plane.ServiceCIDR}

	everything := t.TempDir()
	fleettest.Write(t, everything, everyOption)
	var objects []*unstructured.Unstructured
	for _, dir := range []string{filepath.Join("..", "..", "examples", "fleet"), everything} {
		for _, out := range renderDir(t, dir, o) {
			objects = append(objects, out.Objects...)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newApplier(t, plane.Config)
	kinds := map[string]int{}
	for _, obj := range objects {
		if obj.GetKind() == "Namespace" {
			a.apply(ctx, t, obj, false)
		}
	}
	for _, obj := range objects {
		a.apply(ctx, t, obj, true)
		kinds[obj.GetKind()]++
	}
	// Pods need their ServiceAccount to exist.
	for _, obj := range objects {
		if obj.GetKind() == "ServiceAccount" {
			a.apply(ctx, t, obj, false)
		}
	}
	for _, obj := range objects {
		if obj.GetKind() != "StatefulSet" {
			continue
		}
		template, _, _ := unstructured.NestedMap(obj.Object, "spec", "template")
		pod := &unstructured.Unstructured{Object: template}
		pod.SetAPIVersion("v1")
		pod.SetKind("Pod")
		pod.SetName(obj.GetName() + "-0")
		pod.SetNamespace(obj.GetNamespace())
		// The StatefulSet controller adds the claim's volume.
		volumes, _, _ := unstructured.NestedSlice(pod.Object, "spec", "volumes")
		volumes = append(volumes, map[string]any{"name": "data", "persistentVolumeClaim": map[string]any{"claimName": "data-" + obj.GetName() + "-0"}})
		if err := unstructured.SetNestedSlice(pod.Object, volumes, "spec", "volumes"); err != nil {
			t.Fatal(err)
		}
		a.apply(ctx, t, pod, true)
		kinds["Pod"]++
	}
	for _, kind := range []string{"Pod", "StatefulSet", "Service", "Role", "RoleBinding", "ServiceAccount", "ConfigMap",
		"ResourceQuota", "LimitRange", "NetworkPolicy", "Ingress", "ClusterRole", "ClusterRoleBinding"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s was dry-run applied; the test no longer covers it", kind)
		}
	}
}

type applier struct {
	mapper meta.RESTMapper
	client dynamic.Interface
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), client: client}
}

func (a *applier) apply(ctx context.Context, t *testing.T, obj *unstructured.Unstructured, dryRun bool) {
	t.Helper()
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Errorf("%s %s: %v", gvk.Kind, obj.GetName(), err)
		return
	}
	var ri dynamic.ResourceInterface = a.client.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = a.client.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "warren", Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts); err != nil {
		t.Errorf("server-side apply (dry run %t) of %s %s/%s: %v", dryRun, gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
}
