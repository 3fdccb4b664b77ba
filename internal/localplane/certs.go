package localplane

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/warren-dev/warren/reconciler/pki"
)

// files are the paths of the certificates, keys and kubeconfigs a plane's
// processes read.
type files struct {
	serverCA, clientCA, requestHeaderCA string
	clientCAKey                         string
	servingCert, servingKey             string
	proxyClientCert, proxyClientKey     string
	// saKey is the service-account key, given to the API server as both
	// its verifying and its signing key, as a rendered k8s control plane has it.
	saKey                               string
	admin, controllerManager, scheduler string
	// The kubelet API: what the API server presents to kubelets
	// (system:masters, which real kubelets' webhook authorization lets in),
	// and the serving pair of whatever answers for fake nodes on 127.0.0.1
	// (kwok, or a syncer a test starts).
	kubeletClientCert, kubeletClientKey   string
	kubeletServingCert, kubeletServingKey string
}

// writeCertificates issues the plane's leaf credentials from bundle (the
// same way a warren cluster's control plane gets them) and writes them into dir.
func writeCertificates(dir string, bundle *pki.Bundle, server, serviceCIDR string, sans ...string) (files, error) {
	f := files{
		serverCA:           filepath.Join(dir, "server-ca.crt"),
		clientCA:           filepath.Join(dir, "client-ca.crt"),
		clientCAKey:        filepath.Join(dir, "client-ca.key"),
		requestHeaderCA:    filepath.Join(dir, "request-header-ca.crt"),
		servingCert:        filepath.Join(dir, "apiserver.crt"),
		servingKey:         filepath.Join(dir, "apiserver.key"),
		proxyClientCert:    filepath.Join(dir, "front-proxy-client.crt"),
		proxyClientKey:     filepath.Join(dir, "front-proxy-client.key"),
		saKey:              filepath.Join(dir, "sa.key"),
		admin:              filepath.Join(dir, "admin.kubeconfig"),
		controllerManager:  filepath.Join(dir, "controller-manager.kubeconfig"),
		scheduler:          filepath.Join(dir, "scheduler.kubeconfig"),
		kubeletClientCert:  filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKey:   filepath.Join(dir, "apiserver-kubelet-client.key"),
		kubeletServingCert: filepath.Join(dir, "kubelet-serving.crt"),
		kubeletServingKey:  filepath.Join(dir, "kubelet-serving.key"),
	}
	cp, err := bundle.ControlPlane(pki.ControlPlaneRequest{Server: server, ServiceCIDR: serviceCIDR, SANs: sans})
	if err != nil {
		return f, err
	}
	kubeletClient, err := bundle.ClientCA.Issue(pki.CertRequest{CommonName: pki.KubeletClientName, Organizations: []string{"system:masters"}})
	if err != nil {
		return f, err
	}
	kubeletServing, err := bundle.ServerCA.Issue(pki.CertRequest{CommonName: "localplane-kubelet", Server: true, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		return f, err
	}
	for path, data := range map[string][]byte{
		f.serverCA:           bundle.ServerCA.CertPEM,
		f.clientCA:           bundle.ClientCA.CertPEM,
		f.clientCAKey:        bundle.ClientCA.KeyPEM,
		f.requestHeaderCA:    bundle.RequestHeaderCA.CertPEM,
		f.servingCert:        cp.Serving.CertPEM,
		f.servingKey:         cp.Serving.KeyPEM,
		f.proxyClientCert:    cp.FrontProxyClient.CertPEM,
		f.proxyClientKey:     cp.FrontProxyClient.KeyPEM,
		f.saKey:              bundle.ServiceAccountKey,
		f.admin:              cp.Admin,
		f.controllerManager:  cp.ControllerManager,
		f.scheduler:          cp.Scheduler,
		f.kubeletClientCert:  kubeletClient.CertPEM,
		f.kubeletClientKey:   kubeletClient.KeyPEM,
		f.kubeletServingCert: kubeletServing.CertPEM,
		f.kubeletServingKey:  kubeletServing.KeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return f, nil
}
