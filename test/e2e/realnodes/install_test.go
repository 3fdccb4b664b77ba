package realnodes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/sealedsecrets"
)

// TestWarrenInstalledAsAUserWouldRunsAClusterAndCleansUp: warren installed
// from config/default (the reconciler a pod on the real node, from the image
// `make images` built) takes a commit to a running cluster the tenant uses;
// the syncer, killed on the node, comes back having lost and doubled
// nothing; the cluster removed from Git leaves nothing on the host or node.
// (On a plane of its own: the story of realnodes_test.go stops its node,
// which would stop a reconciler running there too.)
func TestWarrenInstalledAsAUserWouldRunsAClusterAndCleansUp(t *testing.T) {
	needRealNodes(t, "warren's own install is not proven")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s := setUpInstalled(t, ctx)

	t.Run("7 the in-cluster reconciler takes the commit to a running cluster the tenant uses", func(t *testing.T) {
		s.t = t
		s.tenantListsNamespaces("alpha")
		s.runWeb(s.tenantClient())
		svc, err := s.tenantClient().CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s.webAnswersFromAll(s.hostPodIP("alpha", "client"), svc.Spec.ClusterIP)
		api := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
			Spec:       localkube.AgnhostPod("api", "pause"),
		}
		if _, err := s.tenantClient().CoreV1().Pods("default").Create(ctx, api, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		s.hostPod("alpha", "api")
	})
	if t.Failed() {
		return
	}
	t.Run("6 the syncer killed on the node comes back and loses and duplicates nothing", func(t *testing.T) {
		s.t = t
		s.syncerRestartLosesNothing()
	})
	if t.Failed() {
		return
	}
	t.Run("5 removing the cluster from Git removes its pods, volumes, claims, Services, rules and kubelet directories", func(t *testing.T) {
		s.t = t
		s.removalLeavesNothing()
	})
}

// webAnswersFromAll waits until all 3 web replicas answered through target
// (the Service's ClusterIP or DNS name), dialled from the pod at clientIP
// (asked from its node, which its NetworkPolicies admit).
func (s *story) webAnswersFromAll(clientIP, target string) {
	seen := map[string]bool{}
	s.waitFor(2*time.Minute, "all 3 web pods answering through "+target, func() (bool, string) {
		name, err := s.host.Dial(clientIP, target, 80)
		if err != nil {
			return false, err.Error()
		}
		seen[name] = true
		return len(seen) == 3, fmt.Sprintf("answered by %v", seen)
	})
}

// The reconciler runs as config/default installs it.
const (
	warrenNamespace  = "warren-system"
	reconcilerDeploy = "warren-reconciler"
)

// setUpInstalled starts a host plane with a real node holding the images `make
// images` built, installs warren on it as a user would (`kubectl apply
// --server-side -k config/default`), and commits team-a's policy and its
// cluster alpha to a Git server that pods reach; the Fleet names it.
func setUpInstalled(t *testing.T, ctx context.Context) *story {
	tools := os.Getenv("WARREN_TOOLS_DIR")
	host := localkube.ForTest(t, localkube.Options{RealNodes: 1, NodeArchives: makeImages(t)})
	sealed := sealedsecrets.ForTest(t, host, sealedsecrets.Options{})
	admin, err := client.New(host.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(host.Config)
	s := &story{t: t, ctx: ctx, host: host, admin: admin, kube: kube, tools: tools, dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the reconciler pod logged:\n%s", s.reconcilerLogs())
		}
	})
	s.kubectlAdmin("apply", "--server-side", "-k", filepath.Join(repoRoot(t), "config", "default"))
	s.kubectlAdmin("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	s.waitForReconciler()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	version, err := localkube.KubeVersion()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	s.repo = gitserver.NewRepo(t, root, "fleet")
	s.repo.CommitFiles(t, "team-a and its first cluster", map[string]string{
		"policies/team-a.yaml": policy(2),
		"clusters/alpha.yaml":  cluster("alpha", version),
	})
	// Pods cannot reach the host's loopback: the server listens where
	// the real node's pods reach the host.
	server := gitserver.Start(t, root, gitserver.Options{Host: host.HostAddress()})
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: warrenNamespace, Name: "platform"},
		Spec: v1alpha1.FleetSpec{
			URL:      server.URL("fleet"),
			Ref:      &v1alpha1.GitRef{Branch: "main"},
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			// The story ends by removing its only cluster, which the
			// mass-prune guard would hold back.
			AllowMassPrune: true,
			Kubeconfigs: &v1alpha1.KubeconfigPublishing{
				Sealing: v1alpha1.SealingSource{Controller: &v1alpha1.SealingController{Namespace: sealed.Namespace, Service: sealed.ServiceName}},
			},
		},
	}
	if err := admin.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	return s
}

// makeImages runs `make images`, as a user would, into a directory of the
// test's own, and returns the archives it wrote.
func makeImages(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "images", "IMAGES="+dir)
	cmd.Dir = repoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make images: %v\n%s", err, b)
	}
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil || len(archives) != 2 {
		t.Fatalf("make images wrote %v (%v), want the reconciler's and the syncer's archives", archives, err)
	}
	return archives
}

// waitForReconciler waits until the reconciler's Deployment has its pod
// Ready on the real node.
func (s *story) waitForReconciler() {
	s.waitFor(3*time.Minute, "the reconciler Deployment available on the real node", func() (bool, string) {
		var d appsv1.Deployment
		if err := s.admin.Get(s.ctx, client.ObjectKey{Namespace: warrenNamespace, Name: reconcilerDeploy}, &d); err != nil {
			return false, err.Error()
		}
		return d.Status.AvailableReplicas == 1 && d.Status.UpdatedReplicas == 1, s.reconcilerPodState(s.ctx)
	})
}

func (s *story) reconcilerPods(ctx context.Context) []corev1.Pod {
	pods, err := s.kube.CoreV1().Pods(warrenNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + reconcilerDeploy})
	if err != nil {
		return nil
	}
	return pods.Items
}

func (s *story) reconcilerPodState(ctx context.Context) string {
	var out []string
	for _, p := range s.reconcilerPods(ctx) {
		out = append(out, fmt.Sprintf("%s %s on %q %+v", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.ContainerStatuses))
	}
	events, err := s.kube.CoreV1().Events(warrenNamespace).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning {
				out = append(out, fmt.Sprintf("event %s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message))
			}
		}
	}
	return strings.Join(out, "; ")
}

// reconcilerLogs is what the reconciler's pods logged (the previous
// container's too, if it restarted). It runs after the story's context
// ended, so it has its own.
func (s *story) reconcilerLogs() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for _, p := range s.reconcilerPods(ctx) {
		for _, previous := range []bool{true, false} {
			logs, err := s.kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Previous: previous}).DoRaw(ctx)
			if err == nil && len(logs) > 0 {
				out = append(out, fmt.Sprintf("--- %s (previous container: %v)\n%s", p.Name, previous, logs))
			}
		}
	}
	return s.reconcilerPodState(ctx) + "\n" + strings.Join(out, "\n")
}

// kubectlAdmin runs the tools' kubectl as the host's admin.
func (s *story) kubectlAdmin(args ...string) string {
	s.t.Helper()
	cmd := exec.CommandContext(s.ctx, filepath.Join(s.tools, "kubectl"), append([]string{"--kubeconfig", s.host.KubeconfigPath}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
