package config_test

import (
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/warren-dev/warren/examples"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
)

// A platform team installs warren with `kubectl apply --server-side -k
// config/default`; the reconciler, with only the rights that grants, then
// reconciles a fleet.
func TestDefaultInstallAppliesAndItsRightsSuffice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1})
	ctx := t.Context()
	admin, err := client.New(plane.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	for _, res := range resources.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		if err := admin.Patch(ctx, obj, client.Apply, client.FieldOwner("kubectl"), client.ForceOwnership); err != nil {
			t.Fatalf("server-side apply of %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	var deploy appsv1.Deployment
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "warren-system", Name: "warren-reconciler"}, &deploy); err != nil {
		t.Fatalf("the Deployment is not there: %v", err)
	}

	// The reconciler as its ServiceAccount: everything it does must be allowed.
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	sub, err := fs.Sub(examples.Fleet, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	_ = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := fs.ReadFile(sub, path)
			files[path] = string(data)
		}
		return err
	})
	repo.CommitFiles(t, "example fleet", files)

	asReconciler := rest.CopyConfig(plane.Config)
	asReconciler.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:warren-system:warren-reconciler"}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- controller.Run(runCtx, asReconciler, controller.Config{
			CacheDir: t.TempDir(), MetricsAddr: "0", HealthAddr: "0", Concurrency: 2, Version: "test",
		}, logr.Discard())
	}()
	t.Cleanup(func() { stop(); <-done })

	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "example"},
		Spec:       v1alpha1.FleetSpec{URL: repo.FileURL(), Interval: metav1.Duration{Duration: time.Minute}},
	}
	if err := admin.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var f v1alpha1.Fleet
		if err := admin.Get(ctx, client.ObjectKeyFromObject(fleet), &f); err != nil {
			t.Fatal(err)
		}
		var vcs v1alpha1.VirtualClusterList
		if err := admin.List(ctx, &vcs); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for i := range vcs.Items {
			if conditions.IsReady(&vcs.Items[i]) && conditions.IsTrue(&vcs.Items[i], v1alpha1.AppliedCondition) {
				ready++
			}
		}
		if conditions.IsReady(&f) && ready == 4 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the installed rights, the fleet did not become Ready with 4 clusters (%d ready); Fleet: %s", ready, conditions.GetMessage(&f, "Ready"))
		}
		select {
		case err := <-done:
			t.Fatalf("the reconciler stopped: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
