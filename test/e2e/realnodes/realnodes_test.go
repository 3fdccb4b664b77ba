// Package realnodes tells, end to end on a real node, the story a tenant
// lives: a cluster committed to Git becomes a control plane that really runs
// (warren's rendered k8s-distro pod, on a kubelet with containerd), its
// sealed kubeconfig is unsealed by the real sealed-secrets controller, and
// with it the tenant runs workloads that answer through their Service's
// ClusterIP and DNS name and reach their own API as in-cluster clients.
//
// Nothing is simulated: the host plane has a real node (localkube
// RealNodes), the images are built from the tools' binaries and warren's
// own syncer, and nothing is pulled. Only WARREN_REAL_NODES=0 skips it.
package realnodes

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/internal/image"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
	"github.com/warren-dev/warren/syncer/translate"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/reconcilertest"
	"github.com/warren-dev/warren/test/sealedsecrets"
)

// syncerImage is the syncer built from this checkout, as the reconciler
// renders it.
const syncerImage = "ghcr.io/warren-dev/warren-syncer:e2e"

// roles are what team-a's clusters grant the group team-a.
var roles = []string{"edit", "view"}

// policy is team-a's TenantPolicy: up to maxClusters k8s-distro clusters
// granting roles, their kubeconfigs unsealed in team-a.
func policy(maxClusters int) string { return fleettest.KubeconfigPolicyFor(maxClusters, roles, "k8s") }

// cluster is a k8s-distro cluster of team-a at version.
func cluster(name, version string) string {
	return fleettest.KubeconfigClusterFor(name, roles, "distro: k8s", "version: "+version)
}

var sealedSecretsGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}

// story holds the running pieces.
type story struct {
	t      testing.TB
	ctx    context.Context
	host   *localkube.Plane
	admin  client.Client
	kube   kubernetes.Interface
	repo   *gitserver.Repo
	tools  string
	kubeIn string // the tenant's kubeconfig file, pointed at the pod
	dir    string // the story's own files, kept until it ends
}

func TestACommittedClusterRunsOnARealNodeAndServesItsTenant(t *testing.T) {
	needRealNodes(t, "no virtual cluster is proven to run")
	ctrllog.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	s := setUp(t, ctx)

	t.Run("1 the control plane pod really runs and the unsealed kubeconfig answers kubectl get ns", func(t *testing.T) {
		s.t = t
		pod := s.tenantListsNamespaces("alpha")
		for _, st := range append(pod.Status.InitContainerStatuses[1:], pod.Status.ContainerStatuses...) {
			if !st.Ready || st.State.Running == nil {
				t.Errorf("container %s of the control plane is not running and ready: %+v", st.Name, st.State)
			}
			if st.Name == "kube-controller-manager" && st.RestartCount > 0 {
				t.Errorf("the controller-manager restarted %d times at boot", st.RestartCount)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("2 three agnhost replicas answer through the Service's ClusterIP and DNS name", func(t *testing.T) {
		s.t = t
		tenant := s.tenantClient()
		s.runWeb(tenant)
		clientIP := s.hostPodIP("alpha", "client")
		svc, err := tenant.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{svc.Spec.ClusterIP, "web.default.svc.cluster.local"} {
			s.webAnswersFromAll(clientIP, target)
		}
	})

	t.Run("3 a tenant pod reaches its own API through kubernetes.default.svc with its token", func(t *testing.T) {
		s.t = t
		tenant := s.tenantClient()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"},
			Spec:       localkube.AgnhostPod("api", "inclusterclient", "--poll_interval=1"),
		}
		if _, err := tenant.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		host := s.hostPod("alpha", "api")
		// The client logs "calling /healthz" before each call and
		// "status=failed" after one that failed; the first call may race
		// the Service's rules on the node, so the last three finished
		// calls are judged, each with a token.
		s.waitFor(2*time.Minute, "three calls in a row of the in-cluster client to /healthz to succeed", func() (bool, string) {
			logs, err := s.kube.CoreV1().Pods(host.Namespace).GetLogs(host.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			text := string(logs)
			calls := strings.Split(text, "calling /healthz")
			if err != nil || len(calls) < 5 {
				return false, fmt.Sprintf("%v %s", err, text)
			}
			for _, call := range calls[len(calls)-4 : len(calls)-1] {
				if strings.Contains(call, "status=failed") || !strings.Contains(call, "authz_header=") || strings.Contains(call, "authz_header=<empty>") {
					return false, text
				}
			}
			return true, ""
		})
	})
	if t.Failed() {
		return
	}

	t.Run("4 no pod of alpha reaches beta's API server, Services or pods; alpha's pods reach each other", s.clustersAreIsolated)
	if t.Failed() {
		return
	}

	t.Run("4 kubectl logs, exec and port-forward reach the pods on the real node", s.kubeletStories)

	t.Run("5 the node dies and boots again: the pod waits for it, its claim and data are kept, the kubeconfig answers again", func(t *testing.T) {
		s.t = t
		s.nodeDiesAndBootsAgain()
	})
}

// setUp starts the story's plane, its node enforcing NetworkPolicies, with
// team-a's clusters alpha and beta committed: beta, another cluster on the
// same node, is what alpha's pods must never reach; committed with alpha,
// so both boot at once.
func setUp(t *testing.T, ctx context.Context) *story {
	version, err := localkube.KubeVersion()
	if err != nil {
		t.Fatal(err)
	}
	return setUpWith(t, ctx, true, map[string]string{
		"policies/team-a.yaml": policy(2),
		"clusters/alpha.yaml":  cluster("alpha", version),
		"clusters/beta.yaml":   cluster("beta", version),
	})
}

// setUpWith starts a host plane with a real node (enforcing NetworkPolicies
// if policies), the sealed-secrets controller and the reconciler, and a
// Fleet of a Git repository whose first commit holds files.
func setUpWith(t testing.TB, ctx context.Context, policies bool, files map[string]string) *story {
	tools := os.Getenv("WARREN_TOOLS_DIR")
	syncer := buildSyncer(t)
	// Checked once the plane is stopped (cleanups run last first): nothing
	// of the node or of its policy controller is left on the machine.
	var leftovers func() []string
	t.Cleanup(func() {
		if leftovers == nil {
			return
		}
		if left := leftovers(); len(left) > 0 {
			t.Errorf("the stopped plane left on the machine: %v", left)
		}
	})
	host := localkube.ForTest(t, localkube.Options{
		RealNodes:       1,
		NetworkPolicies: policies,
		NodeImages:      []image.Spec{{Ref: syncerImage, Binary: syncer, Path: "/ko-app/warren-syncer"}},
	})
	leftovers = host.LeftoversCheck()
	sealed := sealedsecrets.ForTest(t, host, sealedsecrets.Options{})
	admin, err := client.New(host.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(host.Config)
	applyKustomization(t, ctx, host, filepath.Join(repoRoot(t), "config", "crd"))
	for _, ns := range []string{"team-a", "warren-system"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "team-a and its clusters", files)
	server := gitserver.Start(t, root, gitserver.Options{})

	// The reconciler's log is kept and shown only if the story fails.
	logs := &logBuffer{}
	log := funcr.New(func(prefix, args string) { logs.add(prefix + " " + args) }, funcr.Options{})
	t.Cleanup(func() { // runs once the reconciler has stopped
		if t.Failed() {
			t.Logf("the reconciler logged:\n%s", logs.String())
		}
	})
	reconcilertest.Run(t, ctx, host.Config, reconcilertest.Options{Log: log, Config: controller.Config{
		SyncerImage: syncerImage, PodCIDRs: host.PodCIDRs(),
	}})
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform"},
		Spec: v1alpha1.FleetSpec{
			URL:      server.URL("fleet"),
			Ref:      &v1alpha1.GitRef{Branch: "main"},
			Interval: metav1.Duration{Duration: 10 * time.Minute},
			Kubeconfigs: &v1alpha1.KubeconfigPublishing{
				Sealing: v1alpha1.SealingSource{Controller: &v1alpha1.SealingController{Namespace: sealed.Namespace, Service: sealed.ServiceName}},
			},
		},
	}
	if err := admin.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	return &story{t: t, ctx: ctx, host: host, admin: admin, kube: kube, repo: repo, tools: tools, dir: t.TempDir()}
}

// buildSyncer builds warren-syncer from this checkout, static, for its image.
func buildSyncer(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "warren-syncer")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/warren-syncer")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building warren-syncer: %v\n%s", err, b)
	}
	return out
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// applyKustomization applies `kubectl kustomize dir` server-side, with the
// tools' kubectl, as a user would.
func applyKustomization(t testing.TB, ctx context.Context, host *localkube.Plane, dir string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(os.Getenv("WARREN_TOOLS_DIR"), "kubectl"),
		"--kubeconfig", host.KubeconfigPath, "apply", "--server-side", "-k", dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply --server-side -k %s: %v\n%s", dir, err, b)
	}
	cmd = exec.CommandContext(ctx, filepath.Join(os.Getenv("WARREN_TOOLS_DIR"), "kubectl"),
		"--kubeconfig", host.KubeconfigPath, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("waiting for CRDs: %v\n%s", err, b)
	}
}

func (s *story) waitFor(timeout time.Duration, what string, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || s.ctx.Err() != nil {
			s.t.Fatalf("after %s still waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(250 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// controlPlanePod waits until the cluster's pod is Running and Ready.
func (s *story) controlPlanePod(name string) *corev1.Pod {
	var pod *corev1.Pod
	s.waitFor(4*time.Minute, "the control plane pod Running and Ready", func() (bool, string) {
		var err error
		pod, err = s.kube.CoreV1().Pods("vc-"+name).Get(s.ctx, name+"-0", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%s %+v %+v", pod.Status.Phase, pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses)
	})
	return pod
}

// tenantListsNamespaces waits until cluster name is Ready with its
// kubeconfig published and its control plane pod Ready, unseals the
// kubeconfig for the story's kubectl (s.kubeIn), and checks that `kubectl
// get ns` through it shows default and kube-system. It returns the pod.
func (s *story) tenantListsNamespaces(name string) *corev1.Pod {
	s.t.Helper()
	s.waitPublished(name)
	pod := s.controlPlanePod(name)
	s.kubeIn = s.unsealKubeconfig(name, pod.Status.PodIP)
	out := s.kubectl("get", "ns")
	for _, ns := range []string{"default", "kube-system"} {
		if !strings.Contains(out, ns) {
			s.t.Errorf("kubectl get ns through %s's kubeconfig shows no %s:\n%s", name, ns, out)
		}
	}
	return pod
}

// unsealKubeconfig applies the SealedSecret warren committed, waits for the
// controller to unseal it, and writes the kubeconfig for kubectl. Its
// server is the in-host Service name, which resolves only in the host
// cluster; from here the pod's address is dialled with that name still
// verified (--tls-server-name).
func (s *story) unsealKubeconfig(name, podIP string) string {
	t := s.t
	s.repo.Pull(t)
	key, err := s.applySealedKubeconfig(name)
	if err != nil {
		t.Fatal(err)
	}
	var secret *corev1.Secret
	s.waitFor(time.Minute, "the sealed-secrets controller to unseal the kubeconfig", func() (bool, string) {
		secret, err = s.kube.CoreV1().Secrets(key.Namespace).Get(s.ctx, key.Name, metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	out, err := s.writeKubeconfig(name, secret, podIP)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applySealedKubeconfig applies, as a GitOps tool would, the SealedSecret
// warren committed for cluster name on main, and names the Secret it
// unseals into.
func (s *story) applySealedKubeconfig(name string) (types.NamespacedName, error) {
	path := "kubeconfigs/" + name + ".yaml"
	file, err := exec.Command("git", "-C", s.repo.BareDir, "show", "refs/heads/main:"+path).Output()
	if err != nil {
		return types.NamespacedName{}, fmt.Errorf("%s is not in Git: %w", path, err)
	}
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(file, &obj.Object); err != nil || obj.GetKind() != "SealedSecret" {
		return types.NamespacedName{}, fmt.Errorf("%s is not a SealedSecret (%v):\n%s", path, err, file)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return types.NamespacedName{}, err
	}
	if _, err := dynamic.NewForConfigOrDie(s.host.Config).Resource(sealedSecretsGVR).Namespace(obj.GetNamespace()).
		Patch(s.ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "gitops", Force: ptr.To(true)}); err != nil {
		return types.NamespacedName{}, fmt.Errorf("applying %s: %w", path, err)
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}, nil
}

// writeKubeconfig writes the kubeconfig of the unsealed secret for kubectl,
// pointed at the control plane pod's address with the Service's name still
// verified, and returns its path.
func (s *story) writeKubeconfig(name string, secret *corev1.Secret, podIP string) (string, error) {
	cfg, err := clientcmd.Load(secret.Data[kubeconfig.SecretKey])
	if err != nil {
		return "", fmt.Errorf("the unsealed kubeconfig does not parse: %w", err)
	}
	c := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if c.InsecureSkipTLSVerify {
		return "", fmt.Errorf("the kubeconfig turns TLS verification off")
	}
	serverName := strings.TrimSuffix(strings.TrimPrefix(c.Server, "https://"), ":443")
	c.Server = "https://" + podIP + ":6443"
	c.TLSServerName = serverName
	out := filepath.Join(s.dir, name+".kubeconfig")
	return out, clientcmd.WriteToFile(*cfg, out)
}

func (s *story) kubectl(args ...string) string {
	s.t.Helper()
	out, err := s.tryKubectl(args...)
	if err != nil {
		s.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryKubectl runs kubectl with the tenant's kubeconfig.
func (s *story) tryKubectl(args ...string) (string, error) {
	cmd := exec.CommandContext(s.ctx, filepath.Join(s.tools, "kubectl"), append([]string{"--kubeconfig", s.kubeIn}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *story) tenantClient() kubernetes.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeIn)
	if err != nil {
		s.t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// runWeb makes, as the tenant, 3 agnhost replicas behind Service web and a
// client pod to dial from.
func (s *story) runWeb(tenant kubernetes.Interface) {
	t, ctx := s.t, s.ctx
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       localkube.AgnhostPod("web", "netexec", "--http-port=8080", "--udp-port=-1"),
			},
		},
	}
	if _, err := tenant.AppsV1().Deployments("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := tenant.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"},
		Spec:       localkube.AgnhostPod("client", "netexec", "--http-port=8080", "--udp-port=-1"),
	}
	if _, err := tenant.CoreV1().Pods("default").Create(ctx, client, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.waitFor(3*time.Minute, "the 3 web replicas Ready on the real node", func() (bool, string) {
		d, err := tenant.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return d.Status.ReadyReplicas == 3, fmt.Sprintf("%d ready", d.Status.ReadyReplicas)
	})
}

// hostPod is the host twin of a tenant pod in namespace default, once it
// runs on the real node.
func (s *story) hostPod(cluster, name string) *corev1.Pod {
	var found *corev1.Pod
	s.waitFor(3*time.Minute, "the host twin of pod "+name+" running on the real node", func() (bool, string) {
		pods, err := s.kube.CoreV1().Pods("vc-"+cluster).List(s.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var names []string
		want := translate.Translator{Cluster: cluster, HostNamespace: "vc-" + cluster}.HostName("default", name)
		for i, p := range pods.Items {
			names = append(names, p.Name+"="+string(p.Status.Phase)+"@"+p.Spec.NodeName)
			if p.Name == want && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == localkube.RealNodeName(0) {
				found = &pods.Items[i]
				return true, ""
			}
		}
		return false, strings.Join(names, " ")
	})
	return found
}

func (s *story) hostPodIP(cluster, name string) string { return s.hostPod(cluster, name).Status.PodIP }

// logBuffer collects log lines from the reconciler's goroutines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// needRealNodes skips t in -short mode, and loudly, saying what is then not
// proven, when WARREN_REAL_NODES=0 turns the real-node tests off.
func needRealNodes(t testing.TB, unproven string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a host plane with a real node")
	}
	if os.Getenv("WARREN_REAL_NODES") == "0" {
		t.Skip("SKIPPED: WARREN_REAL_NODES=0 turns off the real-node tests; " + unproven)
	}
}

// waitPublished waits until cluster name is Ready with its kubeconfig
// published, failing at once if the Fleet refused the story's repository.
func (s *story) waitPublished(name string) {
	s.t.Helper()
	s.waitFor(6*time.Minute, name+" Ready with its kubeconfig published", func() (bool, string) {
		var vc v1alpha1.VirtualCluster
		if err := s.admin.Get(s.ctx, client.ObjectKey{Name: name}, &vc); err != nil {
			var fleet v1alpha1.Fleet
			_ = s.admin.Get(s.ctx, client.ObjectKey{Namespace: "warren-system", Name: "platform"}, &fleet)
			if c := conditions.Get(&fleet, meta.ReadyCondition); c != nil && c.Reason == v1alpha1.ValidationFailedReason {
				s.t.Fatalf("the fleet refused the story's repository: %s", c.Message)
			}
			return false, fmt.Sprintf("%v; the Fleet says %+v", err, fleet.Status.Conditions)
		}
		return conditions.IsReady(&vc) && conditions.IsTrue(&vc, v1alpha1.KubeconfigPublishedCondition), fmt.Sprintf("%+v", vc.Status.Conditions)
	})
}
