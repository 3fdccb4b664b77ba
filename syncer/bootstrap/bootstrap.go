// Package bootstrap is `warren-syncer bootstrap-pki`, the k8s distro's init
// container: from the CAs of the cluster's PKI Secret (mounted as files) it
// issues the leaf credentials the virtual control plane runs with, the API
// server's serving certificate, the front-proxy client certificate and the
// controller-manager and admin kubeconfigs, into the data dir. Both distros
// run it for the kubelet API the syncer serves (with --kubelet-only on k3s,
// which issues its own control-plane leaves): the API server's kubelet
// client certificate, the syncer's serving certificate and a copy of the
// client CA's certificate, which the syncer checks clients against.
//
// It never changes or writes the CAs, and writes every key with mode 0600.
package bootstrap

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/warren-dev/warren/reconciler/pki"
)

// Options are the subcommand's flags.
type Options struct {
	PKIDir            string
	OutDir            string
	VirtualKubeconfig string
	ServiceCIDR       string
	Server            string
	SANs              []string
	KubeletOnly       bool
}

// KubeletAddress is where the syncer serves the kubelet API in the control
// plane's pod: loopback, which the API server shares with it.
const KubeletAddress = "127.0.0.1"

// Files bootstrap-pki writes into --out-dir for the kubelet API.
const (
	KubeletClientCertFile  = "apiserver-kubelet-client.crt"
	KubeletClientKeyFile   = "apiserver-kubelet-client.key"
	KubeletServingCertFile = "kubelet-serving.crt"
	KubeletServingKeyFile  = "kubelet-serving.key"
	ClientCAFile           = "client-ca.crt"
)

// Parse reads the subcommand's arguments (after "bootstrap-pki").
func Parse(args []string) (Options, error) {
	var o Options
	fs := pflag.NewFlagSet("bootstrap-pki", pflag.ContinueOnError)
	fs.StringVar(&o.PKIDir, "pki-dir", "/pki", "the PKI Secret, mounted as files")
	fs.StringVar(&o.OutDir, "out-dir", "/data/pki", "where the leaf certificates and component kubeconfigs go")
	fs.StringVar(&o.VirtualKubeconfig, "virtual-kubeconfig", "/data/kubeconfig.yaml", "where the admin kubeconfig goes")
	fs.StringVar(&o.ServiceCIDR, "service-cidr", "10.96.0.0/16", "the service range (its first address is a serving certificate address)")
	fs.StringVar(&o.Server, "server", "https://127.0.0.1:6443", "the API server URL the components in the pod dial")
	fs.StringSliceVar(&o.SANs, "tls-san", nil, "further names or addresses of the API server (repeatable)")
	fs.BoolVar(&o.KubeletOnly, "kubelet-only", false, "issue only the kubelet API's credentials (k3s issues its control plane's own)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bootstrap-pki: unexpected arguments: %v", fs.Args())
	}
	return o, nil
}

// Run issues and writes the credentials.
func Run(o Options) error {
	data := map[string][]byte{}
	for _, key := range []string{pki.ServerCACertKey, pki.ServerCAKeyKey, pki.ClientCACertKey, pki.ClientCAKeyKey,
		pki.RequestHeaderCACertKey, pki.RequestHeaderCAKeyKey, pki.ServiceAccountKeyKey} {
		b, err := os.ReadFile(filepath.Join(o.PKIDir, key))
		if err != nil {
			return fmt.Errorf("reading the PKI Secret: %w", err)
		}
		data[key] = b
	}
	bundle, err := pki.FromSecretData(data)
	if err != nil {
		return fmt.Errorf("PKI Secret in %s: %w", o.PKIDir, err)
	}
	kubelet, err := bundle.Kubelet([]string{KubeletAddress})
	if err != nil {
		return fmt.Errorf("issuing the kubelet API's credentials: %w", err)
	}
	files := map[string][]byte{
		filepath.Join(o.OutDir, KubeletClientCertFile):  kubelet.APIServerClient.CertPEM,
		filepath.Join(o.OutDir, KubeletClientKeyFile):   kubelet.APIServerClient.KeyPEM,
		filepath.Join(o.OutDir, KubeletServingCertFile): kubelet.Serving.CertPEM,
		filepath.Join(o.OutDir, KubeletServingKeyFile):  kubelet.Serving.KeyPEM,
		filepath.Join(o.OutDir, ClientCAFile):           bundle.ClientCA.CertPEM,
	}
	if !o.KubeletOnly {
		cp, err := bundle.ControlPlane(pki.ControlPlaneRequest{Server: o.Server, ServiceCIDR: o.ServiceCIDR, SANs: o.SANs})
		if err != nil {
			return fmt.Errorf("issuing control-plane credentials: %w", err)
		}
		files[filepath.Join(o.OutDir, "apiserver.crt")] = cp.Serving.CertPEM
		files[filepath.Join(o.OutDir, "apiserver.key")] = cp.Serving.KeyPEM
		files[filepath.Join(o.OutDir, "front-proxy-client.crt")] = cp.FrontProxyClient.CertPEM
		files[filepath.Join(o.OutDir, "front-proxy-client.key")] = cp.FrontProxyClient.KeyPEM
		files[filepath.Join(o.OutDir, "controller-manager.conf")] = cp.ControllerManager
		files[filepath.Join(o.OutDir, "scheduler.conf")] = cp.Scheduler
		files[o.VirtualKubeconfig] = cp.Admin
	}
	if err := os.MkdirAll(o.OutDir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", o.OutDir, err)
	}
	for path, content := range files {
		if err := writeFile(path, content); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces path atomically, so a reader never sees half a key.
func writeFile(path string, content []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
