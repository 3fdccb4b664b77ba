package v1alpha1_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/localkube"
)

// Fleet's conditions are read and written by fluxcd/pkg/runtime.
var _ conditions.Setter = &v1alpha1.Fleet{}

func TestFleetConditionsThroughFluxRuntime(t *testing.T) {
	f := &v1alpha1.Fleet{}
	conditions.MarkReconciling(f, meta.ProgressingReason, "fetching")
	if !conditions.IsReconciling(f) {
		t.Fatalf("not reconciling: %+v", f.Status.Conditions)
	}
	conditions.Delete(f, meta.ReconcilingCondition)
	conditions.MarkTrue(f, meta.ReadyCondition, meta.SucceededReason, "applied main@sha1:abc")
	if !conditions.IsReady(f) {
		t.Fatalf("conditions %+v", f.Status.Conditions)
	}
	if f.GetInterval().Duration != time.Minute || !f.PruneEnabled() || f.GetTimeout().Duration != time.Minute {
		t.Fatalf("defaults: interval %v prune %v timeout %v", f.GetInterval(), f.PruneEnabled(), f.GetTimeout())
	}
}

// The generated CRD installs on a real API server, which then fills in the
// defaults (interval 1m, prune on) and refuses a URL that is no Git URL.
func TestFleetCRDDefaultsAndValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{})
	c := planeClient(t, plane)
	ctx := t.Context()

	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "crd", "bases", "warren.dev_fleets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		f := &v1alpha1.FleetList{}
		return c.List(ctx, f) == nil, nil
	})
	if err != nil {
		t.Fatalf("Fleet CRD never served: %v", err)
	}

	// As a user writes it in YAML: no interval, no prune.
	fleet := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte("apiVersion: warren.dev/v1alpha1\nkind: Fleet\nmetadata: {name: team-a, namespace: default}\nspec: {url: 'https://git.example.test/team-a/fleet.git'}\n"), &fleet.Object); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	got := &v1alpha1.Fleet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "team-a"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Interval.Duration != time.Minute || got.Spec.Prune == nil || !*got.Spec.Prune {
		t.Fatalf("server defaults: interval %v prune %v", got.Spec.Interval, got.Spec.Prune)
	}

	bad := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"},
		Spec:       v1alpha1.FleetSpec{URL: "ftp://example.test/fleet"},
	}
	if err := c.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Fatalf("ftp URL: got %v, want invalid", err)
	}
}
