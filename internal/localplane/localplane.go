// Package localplane starts real Kubernetes control planes as local processes
// for warren's tests and demo: etcd and kube-apiserver, and when asked
// kube-controller-manager, kube-scheduler, kwok with fake nodes, and real
// nodes. Processes keep their state in a temporary data dir; Stop ends them
// all, and removes it and everything real nodes made on the host.
//
// kwok marks pods Running on its fake nodes without starting any container,
// and provisions volumes for claims of its StorageClass (kwok-volume)
// without any storage: the default where a test needs hundreds of pods.
// Real nodes (Options.RealNodes, root only) run a kubelet, containerd and
// kube-proxy each in its own network namespace, on images built from local
// binaries (see docs/real-nodes.md).
//
// The binaries come from the tools cache that `make tools` builds
// (test/tools/build.sh); this package never downloads or builds a binary,
// and never pulls an image.
package localplane

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/internal/image"
	"github.com/warren-dev/warren/reconciler/pki"
)

// DefaultServiceCIDR is the service range of a plane unless told otherwise.
const DefaultServiceCIDR = "10.96.0.0/16"

// FakeNodeAnnotation marks the nodes kwok manages.
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// Options says what a plane runs.
type Options struct {
	// ControllerManager starts kube-controller-manager (service accounts,
	// deployments, garbage collection, namespace deletion...).
	ControllerManager bool
	// Scheduler starts kube-scheduler.
	Scheduler bool
	// Nodes, when above zero, starts kwok and registers this many fake nodes.
	Nodes int
	// RealNodes, when above zero, starts this many real nodes (at most 4;
	// needs root): each a kubelet with its own containerd and kube-proxy in
	// its own network namespace, holding the images of nodeImages and
	// NodeImages (nothing is ever pulled), with a "local" StorageClass of
	// static volumes. The API server then listens where pods reach it. It
	// implies ControllerManager and Scheduler.
	RealNodes int
	// NetworkPolicies makes every real node enforce NetworkPolicies, with
	// kube-router's network-policy controller in the node's network
	// namespace (see netpol.go). Traffic from the node itself to its pods
	// stays allowed, as on any host (probes); traffic from the machine
	// outside the node is not the node's: dial pods with Plane.Dial.
	NetworkPolicies bool
	// NodeImages are further images real nodes hold (e.g. warren's syncer).
	NodeImages []image.Spec
	// NodeArchives are image archives (e.g. what `make images` wrote) every
	// real node imports as they are, and pins, under the names inside them.
	NodeArchives []string
	// ServiceCIDR is the service range; DefaultServiceCIDR when empty.
	ServiceCIDR string
	// NodePortRange is the API server's --service-node-port-range
	// ("30000-32767" when empty).
	NodePortRange string
	// PKI lets the caller supply the plane's CAs and service-account key;
	// a fresh bundle is generated when nil.
	PKI *pki.Bundle
	// APIServerPort fixes the API server's port; a free one when zero.
	APIServerPort int
	// Profiling serves the API server's /debug/pprof (to admins), for
	// benchmarks that want to see where its CPU goes.
	Profiling bool
	// AuditLog makes the API server write an audit log (every request's
	// user, user agent, verb and object, at the Metadata level) to
	// Plane.AuditLogPath, for tests that must tell clients apart.
	AuditLog bool
	// ToolsDir holds the binaries; $WARREN_TOOLS_DIR, or the repository's
	// tools cache, when empty.
	ToolsDir string
}

// Plane is a running control plane.
type Plane struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// KubeconfigPath is the admin kubeconfig file.
	KubeconfigPath string
	// ServiceCIDR is the plane's service range.
	ServiceCIDR string
	// Dir is the plane's data dir; Stop removes it.
	Dir string
	// PKI is the bundle the plane trusts.
	PKI *pki.Bundle
	// AuditLogPath is the API server's audit log (JSON lines of
	// audit.k8s.io/v1 Events) when Options.AuditLog asked for one.
	AuditLogPath string
	// Kubelet names the files of the plane's kubelet API: the API server
	// calls kubelets at their node's InternalIP with the client certificate
	// and trusts serving certificates of the server CA.
	Kubelet KubeletFiles

	procs []*process
	// server is the API server's URL, for the plane's own components.
	server string
	// With real nodes: their network, the nodes, and the images they hold.
	net        *planeNet
	nodes      []*realNode
	imageSpecs []image.Spec
	archives   []string
	storage    *localStorage
	kwokNodes  int
	// policies says real nodes run a NetworkPolicy controller, which
	// needs the plane's node-port range.
	policies      bool
	nodePortRange string
	// startNode starts a real node (again), with the plane's tools, files
	// and images.
	startNode func(context.Context, *realNode) error
	// kubeletPort is where kwok serves the fake nodes' kubelet API.
	kubeletPort int
}

// KubeletFiles are the paths of a plane's kubelet API credentials.
type KubeletFiles struct {
	// ClientCA verifies the API server's client certificate.
	ClientCA string
	// APIServerClientCert is the certificate the API server presents to
	// kubelets (the only one a kubelet should accept), APIServerClientKey
	// its key (for tests that call a kubelet as the API server would).
	APIServerClientCert, APIServerClientKey string
	// ServingCert and ServingKey are a serving pair for 127.0.0.1 and
	// localhost that the API server trusts for kubelets. kwok serves with
	// it on a plane with nodes.
	ServingCert, ServingKey string
}

// Start launches a plane and returns once it serves (and, with a
// controller-manager, once the default ServiceAccount exists; with nodes,
// once every fake node is Ready). On failure everything started is stopped.
func Start(ctx context.Context, o Options) (_ *Plane, err error) {
	if o.RealNodes > 0 {
		o.ControllerManager, o.Scheduler = true, true
	}
	tools, err := ToolsDir(o.ToolsDir)
	if err != nil {
		return nil, err
	}
	if err := checkTools(tools, o); err != nil {
		return nil, err
	}
	cidr := cmp.Or(o.ServiceCIDR, DefaultServiceCIDR)
	if _, err := netip.ParsePrefix(cidr); err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", cidr, err)
	}
	bundle := o.PKI
	if bundle == nil {
		if bundle, err = pki.Generate("localkube"); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "localkube-")
	if err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	p := &Plane{Dir: dir, ServiceCIDR: cidr, PKI: bundle, imageSpecs: o.NodeImages, archives: o.NodeArchives, kwokNodes: o.Nodes,
		policies: o.NetworkPolicies && o.RealNodes > 0, nodePortRange: cmp.Or(o.NodePortRange, "30000-32767")}
	defer func() {
		if err != nil {
			_ = p.Stop()
		}
	}()
	client, f, err := p.startServer(ctx, tools, o)
	if err != nil {
		return nil, err
	}
	if err := p.startControllers(ctx, tools, o, f, client); err != nil {
		return nil, err
	}
	if o.Nodes > 0 {
		if err := p.startNodes(ctx, client, tools, f, p.kubeletPort, o.Nodes); err != nil {
			return nil, err
		}
	}
	if o.RealNodes > 0 {
		if err := p.startRealNodes(ctx, client, tools, f); err != nil {
			return nil, err
		}
		if err := p.startLocalStorage(ctx, client); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// checkTools says which binary or file the options need is missing from
// the tools cache.
func checkTools(tools string, o Options) error {
	needed := []string{"etcd", "kube-apiserver"}
	if o.ControllerManager {
		needed = append(needed, "kube-controller-manager")
	}
	if o.Scheduler {
		needed = append(needed, "kube-scheduler")
	}
	if o.Nodes > 0 {
		needed = append(needed, "kwok", "kwok-stages.yaml", "kwok-storage-class.yaml", "kwok-crds.yaml")
	}
	if o.RealNodes > 0 {
		needed = append(needed, realNodeTools...)
		if o.NetworkPolicies {
			needed = append(needed, policyController)
		}
	}
	for _, name := range needed {
		if _, err := os.Stat(filepath.Join(tools, name)); err != nil {
			return fmt.Errorf("%s is missing from the tools cache %s: run `make tools` to build it", name, tools)
		}
	}
	return nil
}

// startServer chooses the ports (and, with real nodes, the network),
// writes the certificates and starts etcd and the API server, returning
// once the API server is ready.
func (p *Plane) startServer(ctx context.Context, tools string, o Options) (kubernetes.Interface, files, error) {
	apiPort, err := apiServerPort(o.APIServerPort)
	if err != nil {
		return nil, files{}, err
	}
	host := "127.0.0.1"
	if o.RealNodes > 0 {
		if p.net, err = setupNetwork(o.RealNodes); err != nil {
			return nil, files{}, err
		}
		host = p.net.apiAddress().String()
	}
	p.server = "https://" + net.JoinHostPort(host, strconv.Itoa(apiPort))
	// kwok's port, also the API server's default kubelet port.
	if p.kubeletPort, err = freePort(); err != nil {
		return nil, files{}, err
	}
	f, err := writeCertificates(p.Dir, p.PKI, p.server, p.ServiceCIDR, host)
	if err != nil {
		return nil, files{}, err
	}
	p.KubeconfigPath = f.admin
	p.Kubelet = KubeletFiles{ClientCA: f.clientCA, APIServerClientCert: f.kubeletClientCert, APIServerClientKey: f.kubeletClientKey,
		ServingCert: f.kubeletServingCert, ServingKey: f.kubeletServingKey}
	if p.Config, err = clientcmd.BuildConfigFromFlags("", f.admin); err != nil {
		return nil, files{}, fmt.Errorf("reading admin kubeconfig: %w", err)
	}
	p.Config.QPS, p.Config.Burst = 200, 400
	etcdURL, err := p.startEtcd(tools)
	if err != nil {
		return nil, files{}, err
	}
	args := append(realNodeAPIServerArgs(o.RealNodes > 0), kubeletArgs(o.RealNodes > 0, f, p.kubeletPort)...)
	if o.AuditLog {
		audit, err := p.auditArgs()
		if err != nil {
			return nil, files{}, err
		}
		args = append(args, audit...)
	}
	apiserver, err := p.startProc(tools, "kube-apiserver", append(args, apiServerArgs(o, f, etcdURL, host, apiPort, p.ServiceCIDR)...)...)
	if err != nil {
		return nil, files{}, err
	}
	client, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return nil, files{}, err
	}
	return client, f, waitFor(ctx, 90*time.Second, apiserver, "did not become ready", func(ctx context.Context) (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// apiServerPort is the port asked for, if it is free, or a free one.
func apiServerPort(asked int) (int, error) {
	if asked == 0 {
		return freePort()
	}
	if err := portFree(asked); err != nil {
		return 0, fmt.Errorf("port %d for kube-apiserver is already in use: stop what holds it or choose another port", asked)
	}
	return asked, nil
}

// startEtcd starts etcd on free ports and returns its client URL.
func (p *Plane) startEtcd(tools string) (string, error) {
	etcdPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	return etcdURL, p.start(tools, "etcd",
		"--name=localkube",
		"--data-dir="+filepath.Join(p.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=localkube="+peerURL,
		"--log-level=warn",
		// Throwaway test state: durability buys nothing and costs seconds.
		"--unsafe-no-fsync",
	)
}

// apiServerArgs are the API server's flags (besides the real nodes' own).
func apiServerArgs(o Options, f files, etcdURL, host string, port int, cidr string) []string {
	return []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + host, "--advertise-address=" + host,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + f.servingCert, "--tls-private-key-file=" + f.servingKey,
		"--client-ca-file=" + f.clientCA,
		"--requestheader-client-ca-file=" + f.requestHeaderCA,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + f.proxyClientCert, "--proxy-client-key-file=" + f.proxyClientKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f.saKey,
		"--service-account-signing-key-file=" + f.saKey,
		"--service-cluster-ip-range=" + cidr,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=" + strconv.FormatBool(o.Profiling),
		"--service-node-port-range=" + cmp.Or(o.NodePortRange, "30000-32767"),
	}
}

// startControllers starts the controller-manager (waiting until it made
// the default ServiceAccount) and the scheduler, as the options ask.
func (p *Plane) startControllers(ctx context.Context, tools string, o Options, f files, client kubernetes.Interface) error {
	if o.ControllerManager {
		cm, err := p.startProc(tools, "kube-controller-manager",
			"--kubeconfig="+f.controllerManager,
			"--secure-port=0",
			"--leader-elect=false",
			"--use-service-account-credentials=true",
			"--service-account-private-key-file="+f.saKey,
			"--root-ca-file="+f.serverCA,
			"--cluster-signing-cert-file="+f.clientCA, "--cluster-signing-key-file="+f.clientCAKey,
			"--service-cluster-ip-range="+p.ServiceCIDR,
			// The defaults (20/30) leave the default ServiceAccount seconds late.
			"--kube-api-qps=200", "--kube-api-burst=400",
			"--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20",
		)
		if err != nil {
			return err
		}
		if err := waitFor(ctx, 60*time.Second, cm, "did not create the default ServiceAccount", func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, nil
		}); err != nil {
			return err
		}
	}
	if !o.Scheduler {
		return nil
	}
	return p.start(tools, "kube-scheduler",
		"--kubeconfig="+f.scheduler,
		"--secure-port=0",
		"--leader-elect=false",
		"--kube-api-qps=200", "--kube-api-burst=400",
	)
}

// startNodes runs kwok and registers n fake nodes, waiting until each is Ready.
// kwok serves their kubelet API on 127.0.0.1:kwokPort, simulating logs,
// attach, exec and port-forward as its CRDs (installed first) say per pod.
func (p *Plane) startNodes(ctx context.Context, client kubernetes.Interface, tools string, f files, kwokPort, n int) error {
	if err := installCRDs(ctx, p.Config, filepath.Join(tools, "kwok-crds.yaml")); err != nil {
		return fmt.Errorf("installing kwok's CRDs: %w", err)
	}
	kwok, err := p.startKwok(ctx, tools, f, kwokPort)
	if err != nil {
		return err
	}
	// kwok's own default StorageClass: claims of it are provisioned and
	// bound by kwok's volume stages, so StatefulSets with claims run.
	scYAML, err := os.ReadFile(filepath.Join(tools, "kwok-storage-class.yaml"))
	if err != nil {
		return err
	}
	var sc storagev1.StorageClass
	if err := yaml.UnmarshalStrict(scYAML, &sc); err != nil {
		return fmt.Errorf("reading kwok's StorageClass: %w", err)
	}
	if _, err := client.StorageV1().StorageClasses().Create(ctx, &sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating kwok's StorageClass: %w", err)
	}
	for i := range n {
		if _, err := client.CoreV1().Nodes().Create(ctx, fakeNode(i), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("registering fake node %d: %w", i, err)
		}
	}
	return waitFor(ctx, 60*time.Second, kwok, "did not make its nodes Ready", func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, node := range nodes.Items {
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= n, nil
	})
}

// startKwok starts kwok serving the fake nodes' kubelet API on port, and
// waits until it listens there. The port was free when the plane chose it,
// seconds earlier; when another process took it meanwhile (kwok exits with
// "address already in use"), kwok starts again on a new free port, before
// any fake node exists to report the old one.
func (p *Plane) startKwok(ctx context.Context, tools string, f files, port int) (*process, error) {
	for attempt := 1; ; attempt++ {
		kwok, err := p.startProc(tools, "kwok",
			"--kubeconfig="+f.admin,
			"--config="+filepath.Join(tools, "kwok-stages.yaml"),
			"--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector="+FakeNodeAnnotation+"=fake",
			"--node-lease-duration-seconds=40",
			"--server-address=127.0.0.1:"+strconv.Itoa(port),
			"--node-port="+strconv.Itoa(port),
			"--tls-cert-file="+f.kubeletServingCert, "--tls-private-key-file="+f.kubeletServingKey,
			"--enable-crds="+strings.Join(kwokCRDKinds, ","),
			"--cidr=10.244.0.0/16",
		)
		if err != nil {
			return nil, err
		}
		err = waitFor(ctx, 60*time.Second, kwok, "did not serve on its kubelet port", func(context.Context) (bool, error) {
			return servesCert(port, f.kubeletServingCert), nil
		})
		if err == nil {
			p.kubeletPort = port
			return kwok, nil
		}
		if !kwok.exited() || attempt == 3 || !strings.Contains(lastLines(kwok.logPath, 20), "address already in use") {
			return nil, err
		}
		p.procs = slices.DeleteFunc(p.procs, func(q *process) bool { return q == kwok })
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
}

// servesCert reports whether what listens on 127.0.0.1:port presents the
// certificate in certFile (verified against itself): kwok, not whatever
// else may have taken the port.
func servesCert(port int, certFile string) bool {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	conn, err := dialer.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	defer conn.Close()
	peers := conn.(*tls.Conn).ConnectionState().PeerCertificates
	return len(peers) > 0 && bytes.Equal(peers[0].Raw, cert.Raw)
}

// FakeNodeName is the name of the i-th fake node.
func FakeNodeName(i int) string { return fmt.Sprintf("kwok-node-%d", i) }

func fakeNode(i int) *corev1.Node {
	name := FakeNodeName(i)
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{FakeNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			// Loopback: the API server reaches the kubelet API kwok serves
			// for every fake node at 127.0.0.1, and nothing leaves this
			// machine. The Hostname entry is needed too: kwok's node-initialize stage
			// keeps a node's addresses only when it has both an InternalIP
			// and a Hostname, and otherwise rewrites them from its own
			// --node-ip and --node-name, unset here, leaving none (so a
			// NodePort cluster never had an endpoint).
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: corev1.NodeHostName, Address: name},
			},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "kwok", OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
}

// Kill ends one of the plane's programs ("etcd", "kube-apiserver",
// "kube-controller-manager", "kube-scheduler", "kwok") with SIGKILL, as a
// crash or an OOM kill would: no graceful shutdown. Its data stays.
func (p *Plane) Kill(name string) error {
	proc, err := p.proc(name)
	if err != nil {
		return err
	}
	proc.kill()
	return nil
}

// Revive starts a program Kill ended again, with the same flags, ports and
// data, and waits until the API server answers /readyz (for etcd: until the
// API server reaches it again).
func (p *Plane) Revive(ctx context.Context, name string) error {
	proc, err := p.proc(name)
	if err != nil {
		return err
	}
	if !proc.exited() {
		return fmt.Errorf("%s is still running: Kill it first", name)
	}
	next, err := proc.again()
	if err != nil {
		return err
	}
	for i := range p.procs {
		if p.procs[i] == proc {
			p.procs[i] = next
		}
	}
	client, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	return waitFor(ctx, 90*time.Second, next, "did not serve again after a restart", func(ctx context.Context) (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

func (p *Plane) proc(name string) (*process, error) {
	for _, proc := range p.procs {
		if proc.name == name {
			return proc, nil
		}
	}
	return nil, fmt.Errorf("the plane runs no %s", name)
}

// PIDs lists the processes the plane started, for checks that Stop ended them.
func (p *Plane) PIDs() []int {
	pids := make([]int, 0, len(p.procs))
	for _, proc := range p.procs {
		pids = append(pids, proc.cmd.Process.Pid)
	}
	return pids
}

// Exited describes each process of the plane that has ended although Stop
// was not called (a crash, or a Kill a test asked for), with the last lines
// of its log: what a failing test should say about its plane.
func (p *Plane) Exited() []string {
	var out []string
	for _, proc := range p.procs {
		if proc.exited() {
			out = append(out, proc.failure("exited").Error())
		}
	}
	return out
}

// Stop ends every process the plane started, newest first, and removes its
// data dir. It is safe to call more than once.
func (p *Plane) Stop() error {
	var errs []error
	if p.storage != nil {
		p.storage.stop()
		p.storage = nil
	}
	// Nodes first: their kubelets would otherwise watch the API server go.
	for i := len(p.nodes) - 1; i >= 0; i-- {
		errs = append(errs, p.nodes[i].stop())
	}
	p.nodes = nil
	if p.net != nil {
		errs = append(errs, p.net.remove())
		p.net = nil
	}
	for i := len(p.procs) - 1; i >= 0; i-- {
		p.procs[i].stop(10 * time.Second)
	}
	p.procs = nil
	if p.Dir != "" {
		errs = append(errs, os.RemoveAll(p.Dir))
		p.Dir = ""
	}
	return errors.Join(errs...)
}

func (p *Plane) start(tools, name string, args ...string) error {
	_, err := p.startProc(tools, name, args...)
	return err
}

func (p *Plane) startProc(tools, name string, args ...string) (*process, error) {
	proc, err := startProcess(name, filepath.Join(tools, name), p.Dir, nil, args...)
	if err != nil {
		return nil, err
	}
	p.procs = append(p.procs, proc)
	return proc, nil
}

// waitFor polls check until it holds, the process exits, or the deadline passes.
func waitFor(ctx context.Context, timeout time.Duration, proc *process, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := check(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-proc.done:
			return proc.failure("exited: " + what)
		case <-ctx.Done():
			return proc.failure(fmt.Sprintf("%s within %s", what, timeout))
		case <-tick.C:
		}
	}
}

func freePort() (int, error) { return FreePort("127.0.0.1") }

// FreePort asks the kernel for a TCP port free on host at this instant.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// kubeletArgs are the API server's flags for kubectl logs, exec, attach and
// port-forward: it calls the kubelet API at a node's InternalIP with a
// client certificate of its own. Fake nodes (kwok's, and a syncer's virtual
// nodes) say 127.0.0.1 and serve a certificate of the server CA, which the
// API server checks; real kubelets serve a self-signed one, which it cannot.
func kubeletArgs(real bool, f files, kubeletPort int) []string {
	args := []string{"--kubelet-client-certificate=" + f.kubeletClientCert, "--kubelet-client-key=" + f.kubeletClientKey}
	if real {
		return append(args, "--kubelet-preferred-address-types=InternalIP,Hostname")
	}
	return append(args, "--kubelet-preferred-address-types=InternalIP",
		"--kubelet-certificate-authority="+f.serverCA, "--kubelet-port="+strconv.Itoa(kubeletPort))
}

// Tool is the path of a program in the tools cache (kubectl, say), or an
// error that says how to build it.
func Tool(name string) (string, error) {
	dir, err := ToolsDir("")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s is missing from the tools cache %s: run `make tools` to build it", name, dir)
	}
	return path, nil
}

// ToolsDir finds the tools cache: dir if set, $WARREN_TOOLS_DIR, or what the
// repository's build script names (without building).
func ToolsDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir = os.Getenv("WARREN_TOOLS_DIR"); dir != "" {
		return dir, nil
	}
	script, err := findBuildScript()
	if err != nil {
		return "", errors.New("WARREN_TOOLS_DIR is not set and test/tools/build.sh was not found: run `make tools` from the repository")
	}
	out, err := exec.Command(script, "--dir").Output()
	if err != nil {
		return "", fmt.Errorf("asking %s for the tools dir: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func findBuildScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, "test", "tools", "build.sh")
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// auditPolicy logs every request once, when its response is complete, with
// its metadata only (never a body: Secrets pass through).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
`

// auditArgs writes the audit policy and returns the API server's audit flags.
func (p *Plane) auditArgs() ([]string, error) {
	policy := filepath.Join(p.Dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, fmt.Errorf("writing the audit policy: %w", err)
	}
	p.AuditLogPath = filepath.Join(p.Dir, "audit.log")
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + p.AuditLogPath, "--audit-log-format=json", "--audit-log-mode=blocking"}, nil
}
