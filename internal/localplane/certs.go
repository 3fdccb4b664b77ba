package localplane

import (
	"fmt"
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
	saKey, saPub                        string
	admin, controllerManager, scheduler string
	// kube-apiserver's client certificate for kubelets (system:masters).
	kubeletClientCert, kubeletClientKey string
}

// writeCertificates issues the plane's leaf credentials from bundle (the
// same way a warren cluster's control plane gets them) and writes them into dir.
func writeCertificates(dir string, bundle *pki.Bundle, server, serviceCIDR string, sans ...string) (files, error) {
	f := files{
		serverCA:          filepath.Join(dir, "server-ca.crt"),
		clientCA:          filepath.Join(dir, "client-ca.crt"),
		clientCAKey:       filepath.Join(dir, "client-ca.key"),
		requestHeaderCA:   filepath.Join(dir, "request-header-ca.crt"),
		servingCert:       filepath.Join(dir, "apiserver.crt"),
		servingKey:        filepath.Join(dir, "apiserver.key"),
		proxyClientCert:   filepath.Join(dir, "front-proxy-client.crt"),
		proxyClientKey:    filepath.Join(dir, "front-proxy-client.key"),
		saKey:             filepath.Join(dir, "sa.key"),
		saPub:             filepath.Join(dir, "sa.pub"),
		admin:             filepath.Join(dir, "admin.kubeconfig"),
		controllerManager: filepath.Join(dir, "controller-manager.kubeconfig"),
		scheduler:         filepath.Join(dir, "scheduler.kubeconfig"),
		kubeletClientCert: filepath.Join(dir, "apiserver-kubelet-client.crt"),
		kubeletClientKey:  filepath.Join(dir, "apiserver-kubelet-client.key"),
	}
	cp, err := bundle.ControlPlane(pki.ControlPlaneRequest{Server: server, ServiceCIDR: serviceCIDR, SANs: sans})
	if err != nil {
		return f, err
	}
	kubeletClient, err := bundle.ClientCA.Issue(pki.CertRequest{CommonName: "kube-apiserver-kubelet-client", Organizations: []string{"system:masters"}})
	if err != nil {
		return f, err
	}
	saPub, err := bundle.ServiceAccountPublicKeyPEM()
	if err != nil {
		return f, err
	}
	for path, data := range map[string][]byte{
		f.serverCA:          bundle.ServerCA.CertPEM,
		f.clientCA:          bundle.ClientCA.CertPEM,
		f.clientCAKey:       bundle.ClientCA.KeyPEM,
		f.requestHeaderCA:   bundle.RequestHeaderCA.CertPEM,
		f.servingCert:       cp.Serving.CertPEM,
		f.servingKey:        cp.Serving.KeyPEM,
		f.proxyClientCert:   cp.FrontProxyClient.CertPEM,
		f.proxyClientKey:    cp.FrontProxyClient.KeyPEM,
		f.saKey:             bundle.ServiceAccountKey,
		f.saPub:             saPub,
		f.admin:             cp.Admin,
		f.controllerManager: cp.ControllerManager,
		f.scheduler:         cp.Scheduler,
		f.kubeletClientCert: kubeletClient.CertPEM,
		f.kubeletClientKey:  kubeletClient.KeyPEM,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return f, nil
}
