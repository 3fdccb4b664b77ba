package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/test/localkube"
)

// The generated CRD installs on a real API server, and every definition of
// the example fleet is accepted as a host VirtualCluster; the API server
// refuses a name too long for the derived host names, as load does.
func TestVirtualClusterCRDAcceptsLoadedDefinitions(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a local control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{})
	c := planeClient(t, plane)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "warren.dev_virtualclusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(raw, crd); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD not established: %v", err)
	}

	repo, problems, err := load.Dir(filepath.Join("..", "..", "..", "examples", "fleet"))
	if err != nil || len(problems) > 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	for _, cl := range repo.Clusters {
		vc := cl.Object.DeepCopy()
		if err := c.Create(ctx, vc); err != nil {
			t.Errorf("creating %s: %v", cl.Name(), err)
			continue
		}
		vc.Status.SourcePath = cl.Source.File
		meta.SetStatusCondition(&vc.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Rendering", Message: "not applied yet"})
		if err := c.Status().Update(ctx, vc); err != nil {
			t.Errorf("updating status of %s: %v", cl.Name(), err)
		}
	}

	long := &v1alpha1.VirtualCluster{ObjectMeta: metav1.ObjectMeta{Name: "a" + strings.Repeat("b", 52)}, Spec: v1alpha1.VirtualClusterSpec{Tenant: "t"}}
	if err := c.Create(ctx, long); err == nil || !strings.Contains(err.Error(), "at most 52 characters") {
		t.Errorf("a 53-character name: err = %v", err)
	}
	defaulted := &v1alpha1.VirtualCluster{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: v1alpha1.VirtualClusterSpec{Tenant: "t"}}
	if err := c.Create(ctx, defaulted); err != nil {
		t.Fatal(err)
	}
	if defaulted.Spec.Distro != v1alpha1.DistroK3s || defaulted.Spec.Sync.Nodes != v1alpha1.NodesFake || defaulted.Spec.Expose.Type != v1alpha1.ExposeClusterIP {
		t.Errorf("API server defaults: %+v", defaulted.Spec)
	}
}

// planeClient is a client of plane that knows CRDs and warren's types.
func planeClient(t *testing.T, plane *localkube.Plane) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
