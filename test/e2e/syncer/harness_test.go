package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/warren-dev/warren/syncer/translate"
	"github.com/warren-dev/warren/test/localkube"
)

const (
	clusterName   = "demo"
	hostNamespace = "vc-demo"
)

// world is the pair of planes every test shares, and the syncer between them.
type world struct {
	host, virtual       *localkube.Plane
	hostC, virtualC     client.Client
	names               translate.Translator
	syncerBin, logDir   string
	syncer              *syncerProcess
	metricsAddr, health string
	// kubeletAddr is where the syncer serves the virtual nodes' kubelet
	// API; it stays the same across restarts (the nodes advertise it).
	kubeletAddr string
}

var w *world

func TestMain(m *testing.M) {
	flag.Parse()
	ctrllog.SetLogger(logr.Discard())
	if testing.Short() {
		os.Exit(m.Run())
	}
	code, err := runWithWorld(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runWithWorld(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "warren-syncer-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "warren-syncer")
	build := exec.Command("go", "build", "-o", bin, "github.com/warren-dev/warren/cmd/warren-syncer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("building warren-syncer: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	profiling := os.Getenv("WARREN_BENCH_PROFILE") != ""
	host, err := localkube.Start(ctx, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 2, Profiling: profiling})
	if err != nil {
		return 0, fmt.Errorf("starting the host plane: %w", err)
	}
	defer host.Stop()
	virtual, err := localkube.Start(ctx, localkube.Options{ControllerManager: true, ServiceCIDR: host.ServiceCIDR, Profiling: profiling})
	if err != nil {
		return 0, fmt.Errorf("starting the virtual plane: %w", err)
	}
	defer virtual.Stop()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return 0, err
	}
	w = &world{host: host, virtual: virtual, syncerBin: bin, logDir: dir,
		names: translate.Translator{Cluster: clusterName, HostNamespace: hostNamespace}}
	if w.hostC, err = client.New(host.Config, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	if w.virtualC, err = client.New(virtual.Config, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	// What the reconciler renders in the host namespace: the namespace, the
	// Service that serves the virtual API and the init manifests (empty
	// here; a story puts the tenants' bindings in).
	if err := placeNodes(ctx, w.hostC); err != nil {
		return 0, err
	}
	if err := w.hostC.Create(ctx, hostNamespaceAt(hostNamespace, "baseline")); err != nil {
		return 0, err
	}
	api := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: clusterName, Namespace: hostNamespace},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}}}
	if err := w.hostC.Create(ctx, api); err != nil {
		return 0, err
	}
	initManifests := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: clusterName + "-init-manifests", Namespace: hostNamespace}}
	if err := w.hostC.Create(ctx, initManifests); err != nil {
		return 0, err
	}
	if err := w.startSyncer(); err != nil {
		return 0, err
	}
	defer w.syncer.stop()
	return m.Run(), nil
}

// syncerProcess is warren-syncer running as a child process.
type syncerProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (w *world) startSyncer() error {
	var err error
	if w.metricsAddr, err = testkit.LoopbackAddr(); err != nil {
		return err
	}
	if w.health, err = testkit.LoopbackAddr(); err != nil {
		return err
	}
	if w.kubeletAddr == "" {
		if w.kubeletAddr, err = testkit.LoopbackAddr(); err != nil {
			return err
		}
	}
	logPath := filepath.Join(w.logDir, "syncer-"+strconv.FormatInt(time.Now().UnixNano(), 10)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	args := append([]string{
		"--name=" + clusterName,
		"--host-namespace=" + hostNamespace,
		"--virtual-kubeconfig=" + w.virtual.KubeconfigPath,
		"--host-kubeconfig=" + w.host.KubeconfigPath,
		"--service-cidr=" + w.host.ServiceCIDR,
		"--pod-security=baseline",
		"--sync-ingresses=true",
		"--sync-node-ports=true",
		"--sync-load-balancers=true",
		"--sync-storage-classes=true",
		"--metrics-bind-address=" + w.metricsAddr,
		"--health-probe-bind-address=" + w.health,
		"--pprof-bind-address=" + os.Getenv("WARREN_SYNCER_PPROF"),
		"--kubelet-address=" + w.kubeletAddr,
		"--kubelet-tls-cert-file=" + w.virtual.Kubelet.ServingCert,
		"--kubelet-tls-key-file=" + w.virtual.Kubelet.ServingKey,
		"--kubelet-client-ca-file=" + w.virtual.Kubelet.ClientCA,
		"--kubelet-client-cert-file=" + w.virtual.Kubelet.APIServerClientCert,
	}, policyFlags...) // the platform's word, as the reconciler renders it
	cmd := exec.Command(w.syncerBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting warren-syncer: %w", err)
	}
	p := &syncerProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.done) }()
	w.syncer = p
	return nil
}

// stop ends the syncer the way a kubelet does: SIGTERM, then SIGKILL.
func (p *syncerProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the syncer's log, for failure messages.
func (p *syncerProcess) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func setup(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() || w == nil {
		t.Skip("end-to-end: starts two control planes and the syncer")
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("syncer log (tail):\n%s", w.syncer.tail())
		}
	})
	return t.Context()
}

// runs counts how often each name was asked for, so stories can run again
// (-count) against the same planes.
var runs = map[string]int{}

// unique is name the first time it is asked for and name-N the Nth time.
func unique(name string) string {
	runs[name]++
	if n := runs[name]; n > 1 {
		suffix := "-" + strconv.Itoa(n)
		name = name[:min(len(name), 63-len(suffix))] + suffix
	}
	return name
}

// namespace creates a fresh virtual namespace for one story.
func namespace(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	name = unique(name)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := w.virtualC.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "the default service account", func() (bool, string) {
		err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, fmt.Sprint(err)
	})
	return name
}

// ownCluster starts, for t alone, a second virtual plane and a syncer
// between it and a new host namespace vc-<name> (unique per run), with
// flags beyond the basic ones, and returns a client of that plane. Both
// are stopped when t ends. pre runs on the new plane before the syncer
// starts.
func ownCluster(t *testing.T, name string, pre func(client.Client), flags ...string) client.Client {
	t.Helper()
	vc, _ := ownClusterNamed(t, name, pre, flags...)
	return vc
}

// ownClusterNamed is ownCluster that also returns the cluster's name (its
// host namespace is vc-<name>).
func ownClusterNamed(t *testing.T, name string, pre func(client.Client), flags ...string) (client.Client, string) {
	t.Helper()
	ctx := t.Context()
	name = unique(name)
	virtual := localkube.ForTest(t, localkube.Options{ControllerManager: true, ServiceCIDR: w.host.ServiceCIDR})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	vc, err := client.New(virtual.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	level := "baseline"
	for _, f := range flags {
		if l, ok := strings.CutPrefix(f, "--pod-security="); ok {
			level = l
		}
	}
	create(t, ctx, w.hostC, hostNamespaceAt("vc-"+name, level))
	if pre != nil {
		pre(vc)
	}

	logPath := filepath.Join(t.TempDir(), "syncer.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--name=" + name, "--host-namespace=vc-" + name,
		"--virtual-kubeconfig=" + virtual.KubeconfigPath, "--host-kubeconfig=" + w.host.KubeconfigPath,
		"--service-cidr=" + w.host.ServiceCIDR, "--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false",
	}, flags...)
	cmd := exec.Command(w.syncerBin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("second syncer's log:\n%s", b)
		}
	})
	return vc, name
}

func create(t testing.TB, ctx context.Context, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// hostObjects lists the host objects the syncer made for virtual namespace ns.
func hostObjects[L client.ObjectList](ctx context.Context, list L, ns string) (L, error) {
	err := w.hostC.List(ctx, list, client.InNamespace(hostNamespace), client.MatchingLabels{
		v1alpha1.ClusterLabel: clusterName, v1alpha1.SyncerNamespaceLabel: ns,
	})
	return list, err
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func names[T any](items []T, name func(*T) string) string {
	var out []string
	for i := range items {
		out = append(out, name(&items[i]))
	}
	return strings.Join(out, ",")
}

// hostNamespaceAt is a host namespace as warren makes one: Pod Security
// Admission enforces (and warns and audits) the syncer's level, so the
// host's own admission stands behind the syncer's checks.
func hostNamespaceAt(name, level string) *corev1.Namespace {
	labels := map[string]string{}
	for _, mode := range []string{"enforce", "warn", "audit"} {
		labels["pod-security.kubernetes.io/"+mode] = level
		labels["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// The host's nodes as a platform keeps them: tenantNode in the tenants'
// pool (--node-selector pool=tenants), serverNode a control-plane node of
// the system pool, tainted so only pods that tolerate it land there.
const (
	tenantNode = "kwok-node-0"
	serverNode = "kwok-node-1"
)

func placeNodes(ctx context.Context, c client.Client) error {
	for name, pool := range map[string]string{tenantNode: "tenants", serverNode: "system"} {
		node := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, node); err != nil {
			return fmt.Errorf("labelling node %s: %w", name, err)
		}
		patched := node.DeepCopy()
		patched.Labels["pool"] = pool
		if name == serverNode {
			patched.Labels["node-role.kubernetes.io/control-plane"] = ""
			patched.Spec.Taints = append(patched.Spec.Taints, corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule})
		}
		if err := c.Patch(ctx, patched, client.MergeFrom(node)); err != nil {
			return fmt.Errorf("labelling node %s: %w", name, err)
		}
	}
	return nil
}
