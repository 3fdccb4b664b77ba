package fluxe2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/warren-dev/warren/internal/localplane"
	"github.com/warren-dev/warren/test/testkit"
)

var applications = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// argoExamples is what is run of Argo CD here (its controllers cannot be
// built with this toolchain: docs/gitops.md): its own CRDs, from the
// argo-cd module at the version the tools cache pins, are installed on the
// host, and every manifest under examples/kubeconfigs-argocd and
// examples/install-argocd goes through a server-side apply dry run with
// strict field validation, so an unknown or misspelt field fails as the
// schema says. A manifest with a misspelt field is refused, to show the
// check checks.
func (s *story) argoExamples(t *testing.T) {
	crds, err := localplane.Tool("argocd-crds.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := localplane.InstallCRDFile(s.ctx, s.host.Config, crds); err != nil {
		t.Fatal(err)
	}
	if _, err := s.kube.CoreV1().Namespaces().Create(s.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "examples", "*-argocd", "*.yaml"))
	if len(files) < 2 {
		t.Fatalf("found %d Argo CD example manifests, want those of kubeconfigs-argocd and install-argocd", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range documents(t, string(data)) {
			if err := s.dryRun(obj); err != nil {
				t.Errorf("%s: %s %s: %v", f, obj.GetKind(), obj.GetName(), err)
			} else {
				t.Logf("%s: %s %s/%s passes a strict server-side dry run", f, obj.GetKind(), obj.GetNamespace(), obj.GetName())
			}
		}
	}
	bad := documents(t, strings.Replace(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: typo, namespace: argocd}
spec:
  project: default
  source: {repoURL: https://git.example.com/x.git, path: ., targetRevision: main}
  destination: {server: https://kubernetes.default.svc}
  syncPolicy: {automated: {prune: true}}
`, "prune", "prun", 1))[0]
	if err := s.dryRun(bad); err == nil || !strings.Contains(err.Error(), "prun") {
		t.Errorf("an Application with a misspelt field passed the dry run (%v): the check would prove nothing", err)
	}
}

// dryRun server-side applies obj with dryRun=All and strict field
// validation; nothing is stored.
func (s *story) dryRun(obj *unstructured.Unstructured) error {
	if obj.GroupVersionKind().Group != applications.Group || obj.GetKind() != "Application" {
		return fmt.Errorf("%s is not an Argo CD Application, the only kind the examples hold", obj.GetKind())
	}
	body, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	_, err = dynamic.NewForConfigOrDie(s.host.Config).Resource(applications).Namespace(obj.GetNamespace()).Patch(s.ctx, obj.GetName(),
		types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "argocd-example", Force: &force, DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return err
}
