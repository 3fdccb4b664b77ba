package fluxe2e

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/flux"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/reconcilertest"
	"github.com/warren-dev/warren/test/sealedsecrets"
	"github.com/warren-dev/warren/test/testkit"
)

// warrenUser is who warren's reconciler acts as: the ServiceAccount
// config/default gives it (the test impersonates it).
const warrenUser = reconcilertest.ServiceAccount

// Git credentials of the test server. warren gets them with write access;
// Flux's Secrets hold the same (the server knows one user).
const gitUser, gitPassword = "platform-bot", "s3cret-git-token"

// platformObjects are what the platform team's own Flux Kustomization
// applies beside warren: a namespace next to warren's vc-alpha (with the
// same prefix, and a ConfigMap in it), and a ConfigMap in the tenant's
// namespace, where warren's kubeconfig Secret lands.
const platformObjects = `apiVersion: v1
kind: Namespace
metadata:
  name: vc-alpha-tools
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: dashboards
  namespace: vc-alpha-tools
data:
  owner: platform
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: team-a-quota-notes
  namespace: team-a
data:
  owner: platform
`

// story holds the running pieces, shared by the subtests in order.
type story struct {
	ctx    context.Context
	host   *localkube.Plane
	admin  client.Client
	kube   kubernetes.Interface
	git    *gitserver.Server
	fleet  *gitserver.Repo
	warren *gitserver.Repo
	sealed *sealedsecrets.Controller
	flux   *flux.Controllers
}

// setUp starts the host (with an audit log), the sealed-secrets controller,
// Flux and a Git server over HTTPS holding three repositories: warren's own
// (its config/ at tag v0.1.0), the fleet and the platform's other objects.
func setUp(t *testing.T, ctx context.Context) *story {
	host := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1, AuditLog: true})
	s := &story{ctx: ctx, host: host, kube: kubernetes.NewForConfigOrDie(host.Config)}
	s.sealed = sealedsecrets.ForTest(t, host, sealedsecrets.Options{})
	s.flux = flux.ForTest(t, host)
	admin, err := client.New(host.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	s.admin = admin
	if _, err := s.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	root := t.TempDir()
	s.warren = gitserver.NewRepo(t, root, "warren")
	s.warren.CommitFiles(t, "warren's install manifests", configFiles(t))
	s.warren.Tag(t, "v0.1.0")
	s.fleet = gitserver.NewRepo(t, root, "fleet")
	s.fleet.CommitFiles(t, "team-a's policy", map[string]string{"README.md": "The platform's clusters.\n", "policies/team-a.yaml": fleettest.KubeconfigPolicy})
	platform := gitserver.NewRepo(t, root, "platform")
	platform.CommitFiles(t, "the platform's own objects", map[string]string{"deploy/objects.yaml": platformObjects})
	s.git = gitserver.Start(t, root, gitserver.Options{Username: gitUser, Password: gitPassword, TLS: true})
	s.secret(t, flux.Namespace, "clusters-git-read")
	s.secret(t, flux.Namespace, "warren-git-read")
	s.secret(t, flux.Namespace, "platform-git-read")
	return s
}

// secret creates a Git credentials Secret as a platform admin would with
// `kubectl create secret generic`: username, password and the server's CA.
func (s *story) secret(t *testing.T, namespace, name string) {
	t.Helper()
	if _, err := s.kube.CoreV1().Secrets(namespace).Create(s.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword), "ca.crt": s.git.CACertPEM()},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// configFiles is this checkout's config/ folder, as warren's repository
// holds it.
func configFiles(t *testing.T) map[string]string {
	t.Helper()
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	err = filepath.WalkDir(filepath.Join(root, "config"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// startWarren runs warren's reconciler in this process with only the
// rights config/default (applied by Flux) gives its ServiceAccount, and
// creates the Fleet: the fleet repository, with kubeconfigs sealed by the
// host's controller.
func (s *story) startWarren(t *testing.T) {
	if _, err := s.kube.CoreV1().Secrets("warren-system").Create(s.ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet-git"},
		Data:       map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword), "ca.crt": s.git.CACertPEM()},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The reconciler's errors go to the test's log (shown when it fails),
	// as the reconciler's main logs through controller-runtime.
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(args, `"error"`) {
			t.Log(prefix, args)
		}
	}, funcr.Options{})
	ctrllog.SetLogger(log)
	reconcilertest.Run(t, s.ctx, s.host.Config, reconcilertest.Options{As: warrenUser, Log: log, Config: controller.Config{
		RateLimiter: fluxcontroller.RateLimiterOptions{MinRetryDelay: 200 * time.Millisecond, MaxRetryDelay: 5 * time.Second},
	}})
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform"},
		Spec: v1alpha1.FleetSpec{
			URL:       s.git.URL("fleet"),
			Ref:       &v1alpha1.GitRef{Branch: "main"},
			Interval:  metav1.Duration{Duration: 10 * time.Minute},
			SecretRef: &meta.LocalObjectReference{Name: "fleet-git"},
			Kubeconfigs: &v1alpha1.KubeconfigPublishing{
				Sealing: v1alpha1.SealingSource{Controller: &v1alpha1.SealingController{Namespace: s.sealed.Namespace, Service: s.sealed.ServiceName}},
			},
		},
	}
	if err := s.admin.Create(s.ctx, fleet); err != nil {
		t.Fatal(err)
	}
}
