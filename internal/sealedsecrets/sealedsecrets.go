// Package sealedsecrets runs the real sealed-secrets controller (built from
// its own Go module by test/tools/build.sh) as a local process against a
// local plane (internal/localplane), for warren's tests and demo. It installs the CRD the
// controller's module ships, gives the controller a ServiceAccount with the
// rights it needs, and hands it in-cluster configuration through a private
// mount namespace, so the machine's own /run is never touched.
//
// There is no kubelet here: so that the API server's service proxy (which
// kubeseal and warren use to fetch the sealing certificate) can reach the
// process, a Pod object stands in for it, never scheduled, whose status
// carries this machine's non-loopback address, behind a selectorless Service
// and its Endpoints.
//
// This package never builds or downloads anything and never mocks the
// controller.
package sealedsecrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/internal/localplane"
)

const (
	// DefaultNamespace is where the controller and its key Secret live.
	DefaultNamespace = "sealed-secrets"
	// DefaultServiceName is the controller's Service, kubeseal's default name.
	DefaultServiceName = "sealed-secrets-controller"
	// ServicePort is the Service's port, named "http" like the upstream chart's.
	ServicePort = 8080
	// KeyLabel marks the controller's sealing-key Secrets.
	KeyLabel = "sealedsecrets.bitnami.com/sealed-secrets-key"

	binaryName = "sealed-secrets-controller"
	crdFile    = "sealed-secrets-crd.yaml"
	crdName    = "sealedsecrets.bitnami.com"
	portName   = "http"
	// serviceAccountDir is where client-go's in-cluster config reads its
	// files, below the /run the private mount namespace replaces.
	serviceAccountDir = "secrets/kubernetes.io/serviceaccount"
)

// Options says how to run the controller.
type Options struct {
	// Namespace defaults to DefaultNamespace; it is created if missing.
	Namespace string
	// ServiceName defaults to DefaultServiceName.
	ServiceName string
	// KeySize is the RSA sealing key's size; 2048 when zero (the
	// controller's own default, 4096, costs seconds of CPU per start).
	KeySize int
	// KeyTTL is how long its sealing certificates are valid; the
	// controller's default (ten years) when zero.
	KeyTTL time.Duration
	// ToolsDir holds the binary and CRD; $WARREN_TOOLS_DIR, or the
	// repository's tools cache, when empty.
	ToolsDir string
}

// Controller is a running sealed-secrets controller.
type Controller struct {
	// Namespace and ServiceName locate it, as kubeseal's
	// --controller-namespace and --controller-name do.
	Namespace   string
	ServiceName string
	// URL is its HTTP endpoint (serving /v1/cert.pem), on this machine's
	// non-loopback address.
	URL string
	// Dir holds its log and in-cluster files; Stop removes it.
	Dir string
	// LogPath is the controller's log file.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// again starts the controller anew after Kill (set by Start).
	again func(context.Context) error
}

// Start installs what the controller needs on plane and runs it, returning
// once its sealing key Secret exists and it serves its certificate.
func Start(ctx context.Context, plane *localplane.Plane, o Options) (_ *Controller, err error) {
	o = o.withDefaults()
	binary, crdPath, err := toolPaths(o.ToolsDir)
	if err != nil {
		return nil, err
	}
	apiHost, apiPort, err := splitHost(plane.Config.Host)
	if err != nil {
		return nil, err
	}
	ip, err := machineAddress()
	if err != nil {
		return nil, err
	}
	listenPort, err := localplane.FreePort(ip.String())
	if err != nil {
		return nil, err
	}
	metricsPort, err := localplane.FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(plane.Config)
	// The service proxy resolves through v1 Endpoints, which the API server
	// warns are deprecated; that is expected here, not news for a test log.
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := installCRD(ctx, plane, crdPath); err != nil {
		return nil, err
	}
	if err := grantRights(ctx, client, o.Namespace); err != nil {
		return nil, err
	}
	token, err := client.CoreV1().ServiceAccounts(o.Namespace).CreateToken(ctx, binaryName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 60 * 60))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for the sealed-secrets ServiceAccount: %w", err)
	}

	dir, err := os.MkdirTemp("", "sealed-secrets-")
	if err != nil {
		return nil, fmt.Errorf("creating the controller's dir: %w", err)
	}
	c := &Controller{
		Namespace:   o.Namespace,
		ServiceName: o.ServiceName,
		URL:         "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(listenPort)),
		Dir:         dir,
		LogPath:     filepath.Join(dir, "controller.log"),
	}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	runDir := filepath.Join(dir, "run")
	if err := writeInClusterConfig(runDir, token.Status.Token, plane.PKI.ServerCA.CertPEM, o.Namespace); err != nil {
		return nil, err
	}

	args := controllerArgs(ip, listenPort, metricsPort, o)
	c.again = func(ctx context.Context) error {
		c.done = make(chan struct{})
		if err := c.start(binary, runDir, apiHost, apiPort, args); err != nil {
			return err
		}
		return c.waitReady(ctx, client)
	}
	if err := publishService(ctx, client, o.Namespace, o.ServiceName, ip, listenPort); err != nil {
		return nil, err
	}
	if err := c.again(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Kill ends the controller at once (SIGKILL), as a crash or an evicted pod
// would; its keys stay in the plane. Revive starts it again.
func (c *Controller) Kill() {
	select {
	case <-c.done:
	default:
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// Revive starts a killed controller again with the same flags and address,
// and returns once it serves its certificate (the same keys as before).
func (c *Controller) Revive(ctx context.Context) error {
	select {
	case <-c.done:
	default:
		return errors.New("the sealed-secrets controller is still running: Kill it first")
	}
	return c.again(ctx)
}

// withDefaults fills in the options left empty.
func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ServiceName == "" {
		o.ServiceName = DefaultServiceName
	}
	if o.KeySize == 0 {
		o.KeySize = 2048
	}
	return o
}

// toolPaths finds the controller's binary and CRD in the tools cache.
func toolPaths(dir string) (binary, crdPath string, err error) {
	tools, err := localplane.ToolsDir(dir)
	if err != nil {
		return "", "", err
	}
	binary = filepath.Join(tools, binaryName)
	crdPath = filepath.Join(tools, crdFile)
	for _, f := range []string{binary, crdPath} {
		if _, err := os.Stat(f); err != nil {
			return "", "", fmt.Errorf("%s is missing from the tools cache %s: run `make tools` to build it", filepath.Base(f), tools)
		}
	}
	return binary, crdPath, nil
}

// writeInClusterConfig writes the files client-go's in-cluster config reads
// under runDir.
func writeInClusterConfig(runDir, token string, caPEM []byte, namespace string) error {
	saDir := filepath.Join(runDir, serviceAccountDir)
	if err := os.MkdirAll(saDir, 0o700); err != nil {
		return fmt.Errorf("creating in-cluster config dir: %w", err)
	}
	for name, data := range map[string][]byte{
		"token":     []byte(token),
		"ca.crt":    caPEM,
		"namespace": []byte(namespace),
	} {
		if err := os.WriteFile(filepath.Join(saDir, name), data, 0o600); err != nil {
			return fmt.Errorf("writing in-cluster %s: %w", name, err)
		}
	}
	return nil
}

// splitHost returns the host and port of an API server address.
func splitHost(address string) (host, port string, err error) {
	apiURL, err := url.Parse(address)
	if err != nil {
		return "", "", fmt.Errorf("plane address %q: %w", address, err)
	}
	if host, port, err = net.SplitHostPort(apiURL.Host); err != nil {
		return "", "", fmt.Errorf("plane address %q: %w", address, err)
	}
	return host, port, nil
}

// controllerArgs are the controller's flags.
func controllerArgs(ip net.IP, listenPort, metricsPort int, o Options) []string {
	args := []string{
		"--listen-addr=" + net.JoinHostPort(ip.String(), strconv.Itoa(listenPort)),
		"--listen-metrics-addr=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(metricsPort)),
		"--key-size=" + strconv.Itoa(o.KeySize),
		// Rotation only when a test asks for it (RotateKey).
		"--key-renew-period=0",
	}
	if o.KeyTTL > 0 {
		args = append(args, "--key-ttl="+o.KeyTTL.String())
	}
	return args
}

// start runs the controller in a private mount namespace whose /run is
// runDir, so client-go's in-cluster config finds the plane's token and CA.
func (c *Controller) start(binary, runDir, apiHost, apiPort string, args []string) error {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return errors.New("unshare (util-linux) is needed to give the sealed-secrets controller its in-cluster files")
	}
	ns := []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		ns = append([]string{"--user", "--map-root-user"}, ns...)
	}
	// The shell only mounts, then replaces itself with the controller.
	script := `mount --bind "$0" /run && exec "$@"`
	cmdArgs := append(append(ns, "--", "/bin/sh", "-c", script, runDir, binary), args...)
	logFile, err := os.Create(c.LogPath)
	if err != nil {
		return fmt.Errorf("creating the controller's log: %w", err)
	}
	cmd := exec.Command(unshare, cmdArgs...)
	cmd.Env = append(environment(),
		"KUBERNETES_SERVICE_HOST="+apiHost,
		"KUBERNETES_SERVICE_PORT="+apiPort,
		"POD_NAMESPACE="+c.Namespace,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting the sealed-secrets controller: %w", err)
	}
	c.cmd = cmd
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	return nil
}

// environment is this process's environment without what would change the
// controller's configuration behind the caller's back.
func environment() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SEALED_SECRETS_") || strings.HasPrefix(kv, "KUBERNETES_") || strings.HasPrefix(kv, "POD_NAMESPACE=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (c *Controller) waitReady(ctx context.Context, client kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		keys, err := client.CoreV1().Secrets(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: KeyLabel})
		if err == nil && len(keys.Items) > 0 {
			if _, err := c.CertificatePEM(ctx); err == nil {
				return nil
			}
		}
		select {
		case <-c.done:
			return c.failure("exited before serving its certificate")
		case <-ctx.Done():
			return c.failure("did not create its key and serve its certificate within 60s")
		case <-tick.C:
		}
	}
}

// CertificatePEM fetches the controller's current sealing certificate
// straight from its HTTP endpoint.
func (c *Controller) CertificatePEM(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/v1/cert.pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("BEGIN CERTIFICATE")) {
		return nil, fmt.Errorf("GET %s/v1/cert.pem: %s", c.URL, resp.Status)
	}
	return body, nil
}

// RotateKey makes the controller generate a new sealing key, as its
// SIGUSR1 handler does, and returns the new certificate once it is served.
// Older keys stay with the controller, so what they sealed still unseals.
func (c *Controller) RotateKey(ctx context.Context) ([]byte, error) {
	before, err := c.CertificatePEM(ctx)
	if err != nil {
		return nil, err
	}
	if err := syscall.Kill(c.PID(), syscall.SIGUSR1); err != nil {
		return nil, fmt.Errorf("asking the sealed-secrets controller for a new key: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		if after, err := c.CertificatePEM(ctx); err == nil && !bytes.Equal(after, before) {
			return after, nil
		}
		select {
		case <-c.done:
			return nil, c.failure("exited while rotating its key")
		case <-ctx.Done():
			return nil, c.failure("did not serve a new certificate within 60s of SIGUSR1")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PID is the controller's process id.
func (c *Controller) PID() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Stop ends the controller and removes its dir. It is safe to call more than once.
func (c *Controller) Stop() error {
	if c.cmd != nil {
		select {
		case <-c.done:
		default:
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
				<-c.done
			}
		}
	}
	if c.Dir == "" {
		return nil
	}
	err := os.RemoveAll(c.Dir)
	c.Dir = ""
	return err
}

func (c *Controller) failure(reason string) error {
	msg := "sealed-secrets controller " + reason
	select {
	case <-c.done:
		if c.err != nil {
			msg += fmt.Sprintf(" (%v)", c.err)
		}
	default:
	}
	if data, err := os.ReadFile(c.LogPath); err == nil {
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		msg += "; last lines of its log:\n" + strings.Join(lines, "\n")
	}
	return errors.New(msg)
}

func installCRD(ctx context.Context, plane *localplane.Plane, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the SealedSecret CRD: %w", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	client, err := apiextensionsclient.NewForConfig(plane.Config)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	if _, err := crds.Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("installing the SealedSecret CRD: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		got, err := crds.Get(ctx, crdName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the SealedSecret CRD was not established within 30s")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// grantRights creates the namespace, ServiceAccount and RBAC the controller
// needs: its own key Secrets, and reading SealedSecrets and writing the
// Secrets it unseals in every namespace.
func grantRights(ctx context.Context, client kubernetes.Interface, namespace string) error {
	name := binaryName
	// Cluster-wide names carry the namespace, so two controllers on one
	// plane each get their own binding.
	clusterName := binaryName + "-" + namespace
	steps := []struct {
		what string
		do   func() error
	}{
		{"namespace " + namespace, func() error {
			_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
			return err
		}},
		{"ServiceAccount " + name, func() error {
			_, err := client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		}},
		{"ClusterRole " + clusterName, func() error {
			_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: clusterName},
				Rules: []rbacv1.PolicyRule{
					// Watch SealedSecrets everywhere and report on them.
					{APIGroups: []string{"bitnami.com"}, Resources: []string{"sealedsecrets"}, Verbs: []string{"get", "list", "watch", "update", "patch"}},
					{APIGroups: []string{"bitnami.com"}, Resources: []string{"sealedsecrets/status"}, Verbs: []string{"get", "update", "patch"}},
					// Write the Secrets it unseals, and keep its own keys.
					{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
					{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
					{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}},
				},
			}, metav1.CreateOptions{})
			return err
		}},
		{"ClusterRoleBinding " + clusterName, func() error {
			_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: clusterName},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterName},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: name}},
			}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s for the sealed-secrets controller: %w", s.what, err)
		}
	}
	return nil
}

// publishService makes the controller reachable through the API server's
// service proxy: a never-scheduled Pod whose status holds the controller's
// address, a selectorless Service, and Endpoints naming that Pod (the
// proxy only dials addresses that belong to a Pod).
func publishService(ctx context.Context, client kubernetes.Interface, namespace, service string, ip net.IP, port int) error {
	podName := service + "-local-process"
	pods := client.CoreV1().Pods(namespace)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName,
			Labels:      map[string]string{"app.kubernetes.io/name": "sealed-secrets"},
			Annotations: map[string]string{"warren.dev/stand-in": "the sealed-secrets controller runs as a local process; this Pod only carries its address"},
		},
		Spec: corev1.PodSpec{
			// No scheduler serves this name, so no (kwok) node ever runs it.
			SchedulerName:                "warren-local-process",
			ServiceAccountName:           binaryName,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "controller", Image: "local-process/sealed-secrets-controller"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating the stand-in Pod for the sealed-secrets controller: %w", err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = ip.String()
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip.String()}}
	if _, err := pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("recording the sealed-secrets controller's address on its stand-in Pod: %w", err)
	}
	if _, err := client.CoreV1().Services(namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: service},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: portName, Port: ServicePort, TargetPort: intstr.FromInt32(int32(port)), Protocol: corev1.ProtocolTCP,
		}}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the sealed-secrets controller's Service: %w", err)
	}
	//nolint:staticcheck // The service proxy still resolves through v1 Endpoints.
	if _, err := client.CoreV1().Endpoints(namespace).Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: service},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: ip.String(), TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: podName, UID: pod.UID}}},
			Ports:     []corev1.EndpointPort{{Name: portName, Port: int32(port), Protocol: corev1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the sealed-secrets controller's Endpoints: %w", err)
	}
	return nil
}

// machineAddress is an IPv4 address of this machine that is not loopback:
// the API server's proxy refuses loopback and link-local endpoints.
func machineAddress() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this machine's addresses: %w", err)
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := n.IP.To4()
		if ip == nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		return ip, nil
	}
	return nil, errors.New("this machine has no non-loopback IPv4 address; the API server's service proxy cannot reach a local sealed-secrets controller without one")
}
