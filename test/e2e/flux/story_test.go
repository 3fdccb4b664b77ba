// Package fluxe2e tells the story of warren beside the platform's own
// GitOps tool: the real Flux source-controller and kustomize-controller
// (built from their modules, run as local processes) install warren from
// config/default, apply the kubeconfigs/ folder warren commits through the
// manifests of examples/kubeconfigs-flux exactly as their README says to use
// them, and manage the platform's other objects beside warren's; the real
// sealed-secrets controller unseals what Flux applies. The host's API server
// keeps an audit log, which is how the story proves that neither tool
// writes to the other's objects.
//
// Argo CD cannot be built here (see docs/gitops.md); its examples are
// checked with strict server-side dry runs against its own CRDs.
package fluxe2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/flux"
	"github.com/warren-dev/warren/test/testkit"
)

// platformFlux is the platform team's own Flux configuration for its other
// objects (not an example: any Flux setup has one).
func platformFlux(url string) string {
	return fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: platform, namespace: flux-system}
spec:
  interval: 1m
  url: %s
  ref: {branch: main}
  secretRef: {name: platform-git-read}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: platform, namespace: flux-system}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: platform}
  path: ./deploy
  prune: true
`, url)
}

func TestWarrenBesideFlux(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane, Flux, the sealed-secrets controller and a Git server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := setUp(t, ctx)

	t.Run("Argo CD's examples pass a strict server-side dry run against its CRDs", s.argoExamples)
	if !t.Run("Flux installs warren from config/default with examples/install-flux", s.fluxInstallsWarren) {
		return
	}
	s.startWarren(t)
	if !t.Run("a merged cluster's kubeconfig reaches the tenant's namespace through Flux", s.mergedClusterReachesItsNamespace) {
		return
	}
	if !t.Run("ten quiet reconciles of both tools: neither writes to the other's objects", s.quietReconciles) {
		return
	}
	t.Run("a cluster removed from Git: warren removes its file, Flux prunes its Secret", s.removedCluster)
}

// fluxInstallsWarren applies examples/install-flux through its README's
// overlay (a mirror: the URL and its Secret filled in) and waits until
// kustomize-controller has applied config/default and it is healthy.
func (s *story) fluxInstallsWarren(t *testing.T) {
	objs := readmeOverlay(t, "install-flux", map[string]string{
		"https://git.example.com/mirrors/warren.git": s.git.URL("warren"),
	})
	flux.Apply(t, s.ctx, s.host.Config, "platform-admin", objs...)
	ks := flux.WaitReady(t, s.host.Config, flux.Kustomizations, "warren", 3*time.Minute)
	inventory := flux.Inventory(ks)
	for _, want := range []string{
		"_fleets.warren.dev_apiextensions.k8s.io_CustomResourceDefinition",
		"_virtualclusters.warren.dev_apiextensions.k8s.io_CustomResourceDefinition",
		"_warren-system__Namespace",
		"warren-system_warren-reconciler__ServiceAccount",
		"warren-system_warren-reconciler_apps_Deployment",
	} {
		if !slices.Contains(inventory, want) {
			t.Errorf("Flux's inventory of warren's install lacks %s: %v", want, inventory)
		}
	}
	crd, err := s.kube.Discovery().ServerResourcesForGroupVersion("warren.dev/v1alpha1")
	if err != nil || len(crd.APIResources) == 0 {
		t.Fatalf("warren's API is not served after Flux applied config/default: %v", err)
	}
}

// mergedClusterReachesItsNamespace merges a pull request adding alpha,
// waits for warren's commit of its sealed kubeconfig, and for Flux
// (configured by examples/kubeconfigs-flux through its README's overlay)
// to apply it, until the Secret is in team-a.
func (s *story) mergedClusterReachesItsNamespace(t *testing.T) {
	flux.Apply(t, s.ctx, s.host.Config, "platform-admin", readmeOverlay(t, "kubeconfigs-flux", map[string]string{
		"https://git.example.com/platform/clusters.git": s.git.URL("fleet"),
	})...)
	flux.Apply(t, s.ctx, s.host.Config, "platform-admin", documents(t, platformFlux(s.git.URL("platform")))...)
	flux.WaitReady(t, s.host.Config, flux.Kustomizations, "platform", 2*time.Minute)

	merged := s.mergePullRequest(t, "add-alpha", "add cluster alpha", func() {
		s.fleet.CommitFiles(t, "add cluster alpha", map[string]string{"clusters/alpha.yaml": fleettest.KubeconfigCluster("alpha")})
	})
	// The Git host's push webhook: warren reconciles at once.
	s.requestReconcile(t, "merged-alpha")
	s.waitFor(t, 3*time.Minute, "alpha Ready and its kubeconfig published", func() bool {
		vc := s.cluster(t, "alpha")
		return vc != nil && conditions.IsReady(vc) && conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition)
	})
	published := time.Now()
	commit := s.fleet.Head(t, "main")
	if got := s.cluster(t, "alpha").Status.Kubeconfig; got == nil || got.Commit != commit {
		t.Fatalf("alpha's status.kubeconfig %+v, want warren's commit %s at the head of main", got, commit)
	}
	// The push webhook of warren's commit, through Flux's Receiver.
	flux.Reconcile(t, s.host.Config, flux.GitRepositories, "clusters", time.Minute)
	s.waitApplied(t, "warren-kubeconfigs", commit)
	applied := time.Now()
	s.waitFor(t, time.Minute, "the Secret team-a/alpha-kubeconfig", func() bool {
		_, err := s.kube.CoreV1().Secrets("team-a").Get(s.ctx, "alpha-kubeconfig", metav1.GetOptions{})
		return err == nil
	})
	done := time.Now()
	t.Logf("merge → Secret in team-a: %s (merge → warren's commit %s, → Flux applied it %s, → unsealed %s)",
		done.Sub(merged).Round(10*time.Millisecond), published.Sub(merged).Round(10*time.Millisecond),
		applied.Sub(published).Round(10*time.Millisecond), done.Sub(applied).Round(10*time.Millisecond))

	secret, err := s.kube.CoreV1().Secrets("team-a").Get(s.ctx, "alpha-kubeconfig", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(secret.Data["config"]) == 0 {
		t.Fatal("the unsealed Secret holds no kubeconfig under config")
	}
	if owner := metav1.GetControllerOf(secret); owner == nil || owner.Kind != "SealedSecret" || owner.Name != "alpha-kubeconfig" {
		t.Fatalf("the Secret is not owned by its SealedSecret: %+v", secret.OwnerReferences)
	}
	sealed := s.sealedSecret(t, "alpha-kubeconfig")
	if sealed == nil || sealed.GetLabels()["kustomize.toolkit.fluxcd.io/name"] != "warren-kubeconfigs" {
		t.Fatalf("SealedSecret team-a/alpha-kubeconfig is not Flux's: %v", sealed)
	}
}

// mergePullRequest makes a branch, lets change commit on it (and push it),
// merges it into main with a merge commit and pushes main, as a Git host's
// merge button does; it returns when main has moved.
func (s *story) mergePullRequest(t *testing.T, branch, message string, change func()) time.Time {
	t.Helper()
	s.fleet.Pull(t)
	s.fleet.Git(t, "checkout", "--quiet", "-b", branch)
	change()
	s.fleet.Git(t, "checkout", "--quiet", "main")
	s.fleet.Git(t, "merge", "--quiet", "--no-ff", "-m", "Merge pull request: "+message, branch)
	s.fleet.Git(t, "push", "--quiet", "origin", "main")
	return time.Now()
}

// waitApplied waits until a Flux Kustomization has applied the fleet
// repository at commit and is Ready.
func (s *story) waitApplied(t *testing.T, name, commit string) {
	t.Helper()
	ri := flux.Dynamic(s.host.Config, flux.Kustomizations)
	testkit.Eventually(t, 2*time.Minute, "Kustomization "+name+" to apply main@sha1:"+commit, func() (bool, string) {
		ks, err := ri.Get(s.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		rev, _, _ := unstructured.NestedString(ks.Object, "status", "lastAppliedRevision")
		status, msg := flux.Condition(ks, "Ready")
		return rev == "main@sha1:"+commit && status == "True", rev + " " + status + ": " + msg
	})
}

func (s *story) sealedSecret(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("bitnami.com/v1alpha1")
	u.SetKind("SealedSecret")
	if err := s.admin.Get(s.ctx, client.ObjectKey{Namespace: "team-a", Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return u
}

func (s *story) cluster(t *testing.T, name string) *v1alpha1.VirtualCluster {
	t.Helper()
	var vc v1alpha1.VirtualCluster
	if err := s.admin.Get(s.ctx, client.ObjectKey{Name: name}, &vc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return &vc
}

func (s *story) getFleet(t *testing.T) *v1alpha1.Fleet {
	t.Helper()
	var f v1alpha1.Fleet
	if err := s.admin.Get(s.ctx, client.ObjectKey{Namespace: "warren-system", Name: "platform"}, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// requestReconcile sets warren.dev/requested-at, as a Git host's push
// webhook would, and waits until both of warren's controllers handled it.
func (s *story) requestReconcile(t *testing.T, value string) {
	t.Helper()
	f := s.getFleet(t)
	before := f.DeepCopy()
	if f.Annotations == nil {
		f.Annotations = map[string]string{}
	}
	f.Annotations[v1alpha1.RequestedAtAnnotation] = value
	if err := s.admin.Patch(s.ctx, f, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, 2*time.Minute, "warren to handle requested-at "+value, func() bool {
		f := s.getFleet(t)
		return f.Status.LastHandledRequestedAt == value && f.Status.Kubeconfigs != nil && f.Status.Kubeconfigs.LastHandledRequestedAt == value
	})
}

func (s *story) waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	testkit.Eventually(t, timeout, what, func() (bool, string) {
		if ok() {
			return true, ""
		}
		f := s.getFleet(t)
		return false, fmt.Sprintf("Fleet Ready: %s; KubeconfigsPublished: %s", conditions.GetMessage(f, "Ready"),
			conditions.GetMessage(f, v1alpha1.KubeconfigsPublishedCondition))
	})
}

// documents splits a multi-document YAML stream into objects.
func documents(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(stream, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}
