package controller

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	fluxclient "github.com/fluxcd/pkg/runtime/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/render"
)

// hostConn is one host cluster as the reconciler reaches it.
type hostConn struct {
	name string
	// client reads the host's API server directly (no cache) and learns
	// new kinds, as the Applier needs; its writes wait on the lease.
	client client.Client
	// kube is the same host as a clientset (kubeconfig credentials).
	kube kubernetes.Interface
}

// hostRegistry opens, and keeps while their kubeconfig stays the same, the
// connections to the hosts Fleets place clusters on: the local one (the
// cluster warren runs on) and those HostClusters name. It never logs,
// returns or records a kubeconfig's content.
type hostRegistry struct {
	local *hostConn
	// reader reads HostClusters and their Secrets from the local API server.
	reader client.Reader
	scheme *runtime.Scheme
	// base lends its rate limits to remote hosts' clients.
	base    *rest.Config
	leading func(context.Context) error

	mu    sync.Mutex
	conns map[client.ObjectKey]*cachedConn
}

type cachedConn struct {
	fingerprint [sha256.Size]byte
	conn        *hostConn
}

// errInvalidKubeconfig marks a HostCluster whose kubeconfig cannot be used
// as it is: only a change to it (or its Secret) helps.
var errInvalidKubeconfig = errors.New("unusable kubeconfig")

// hostProbeTimeout bounds the check that a host answers.
const hostProbeTimeout = 5 * time.Second

// remoteTimeout bounds every request to a remote host, so one that stops
// answering mid-request never holds a reconcile for long.
const remoteTimeout = 30 * time.Second

// connect returns the connection to host, named from a Fleet or a
// VirtualCluster in namespace, and its HostCluster (nil for local).
func (h *hostRegistry) connect(ctx context.Context, namespace, host string) (*hostConn, *v1alpha1.HostCluster, error) {
	if host == v1alpha1.LocalHost {
		return h.local, nil, nil
	}
	var hc v1alpha1.HostCluster
	if err := h.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: host}, &hc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("no HostCluster %s in namespace %s", host, namespace)
		}
		return nil, nil, fmt.Errorf("reading HostCluster %s/%s: %w", namespace, host, err)
	}
	conn, err := h.open(ctx, &hc)
	return conn, &hc, err
}

// open returns the connection a HostCluster's kubeconfig gives.
func (h *hostRegistry) open(ctx context.Context, hc *v1alpha1.HostCluster) (*hostConn, error) {
	raw, err := h.kubeconfigOf(ctx, hc)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKeyFromObject(hc)
	fingerprint := sha256.Sum256(raw)
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.conns[key]; ok && c.fingerprint == fingerprint {
		return c.conn, nil
	}
	cfg, err := restConfigOf(raw, h.base)
	if err != nil {
		return nil, fmt.Errorf("HostCluster %s/%s: %w", hc.Namespace, hc.Name, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: h.scheme})
	if err != nil {
		return nil, fmt.Errorf("HostCluster %s/%s: %w", hc.Namespace, hc.Name, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("HostCluster %s/%s: %w", hc.Namespace, hc.Name, err)
	}
	conn := &hostConn{name: hc.Name, client: fenced(c, h.leading), kube: kube}
	if h.conns == nil {
		h.conns = map[client.ObjectKey]*cachedConn{}
	}
	h.conns[key] = &cachedConn{fingerprint: fingerprint, conn: conn}
	return conn, nil
}

// kubeconfigOf reads the kubeconfig a HostCluster's Secret holds: its
// key, else `value`, else `value.yaml` (Flux's defaults).
func (h *hostRegistry) kubeconfigOf(ctx context.Context, hc *v1alpha1.HostCluster) ([]byte, error) {
	ref := hc.Spec.KubeConfig.SecretRef
	var secret corev1.Secret
	if err := h.reader.Get(ctx, client.ObjectKey{Namespace: hc.Namespace, Name: ref.Name}, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: kubeconfig Secret %s/%s does not exist", errInvalidKubeconfig, hc.Namespace, ref.Name)
		}
		return nil, fmt.Errorf("reading kubeconfig Secret %s/%s: %w", hc.Namespace, ref.Name, err)
	}
	keys := []string{v1alpha1.DefaultKubeConfigKey, v1alpha1.DefaultKubeConfigYAMLKey}
	if ref.Key != "" {
		keys = []string{ref.Key}
	}
	for _, k := range keys {
		if v, ok := secret.Data[k]; ok && len(v) > 0 {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: kubeconfig Secret %s/%s has no key %q", errInvalidKubeconfig, hc.Namespace, ref.Name, keys[0])
}

// restConfigOf turns a kubeconfig into a client configuration, refusing
// what would weaken or leave the reconciler: skipping TLS verification,
// plain http, exec and auth-provider plugins (programs run in the
// reconciler), and references to the reconciler's own files. Errors never
// quote the kubeconfig.
func restConfigOf(raw []byte, base *rest.Config) (*rest.Config, error) {
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: the Secret's kubeconfig does not parse", errInvalidKubeconfig)
	}
	if err := fluxclient.ValidateKubeConfig(kc); err != nil {
		return nil, fmt.Errorf("%w: %s", errInvalidKubeconfig, err.Error())
	}
	for name, c := range kc.Clusters {
		if c.InsecureSkipTLSVerify {
			return nil, fmt.Errorf("%w: cluster %q sets insecure-skip-tls-verify; warren always verifies the host's certificate: give certificate-authority-data", errInvalidKubeconfig, name)
		}
	}
	for name, u := range kc.AuthInfos {
		if u.Exec != nil || u.AuthProvider != nil {
			return nil, fmt.Errorf("%w: user %q runs an exec or auth-provider plugin; give a token or a client certificate inline", errInvalidKubeconfig, name)
		}
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: its current context is not complete", errInvalidKubeconfig)
	}
	if u, err := url.Parse(cfg.Host); err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("%w: the server must be an https:// URL", errInvalidKubeconfig)
	}
	if cfg.Insecure {
		return nil, fmt.Errorf("%w: TLS verification is off", errInvalidKubeconfig)
	}
	out := rest.CopyConfig(cfg)
	out.UserAgent = ControllerName
	out.Timeout = remoteTimeout
	if base != nil {
		out.QPS, out.Burst = base.QPS, base.Burst
	}
	return out, nil
}

// hostFacts is what a host says of itself.
type hostFacts struct {
	version, serviceCIDR, nodePorts string
}

// probe checks, within hostProbeTimeout, that a host answers.
func probe(ctx context.Context, conn *hostConn) error {
	ctx, cancel := context.WithTimeout(ctx, hostProbeTimeout)
	defer cancel()
	if err := conn.kube.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return fmt.Errorf("host %s does not answer: %w", conn.name, err)
	}
	return nil
}

// detect asks a host for its version, service CIDR (its ServiceCIDR
// objects, else the range a refused dry-run Service names) and node-port
// range (from a refused NodePort Service; the default when it will not
// say), as the reconciler does for its own host at start.
func detect(ctx context.Context, conn *hostConn) (hostFacts, error) {
	v, err := conn.kube.Discovery().ServerVersion()
	if err != nil {
		return hostFacts{}, fmt.Errorf("host %s does not answer: %w", conn.name, err)
	}
	cidrs, err := apply.DetectServiceCIDRs(ctx, conn.client)
	if err != nil {
		return hostFacts{}, fmt.Errorf("host %s: detecting its service CIDR: %w", conn.name, err)
	}
	ports, err := apply.DetectNodePortRange(ctx, conn.client)
	if err != nil {
		ports = render.DefaultNodePortRange
	}
	return hostFacts{version: v.GitVersion, serviceCIDR: cidrs[0], nodePorts: ports}, nil
}
