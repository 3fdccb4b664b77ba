package localkube

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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
}

// writeCertificates issues the plane's leaf certificates from bundle and
// writes them with the kubeconfigs of each component into dir.
func writeCertificates(dir string, bundle *pki.Bundle, server string, serviceIP net.IP) (files, error) {
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
	}
	serving, err := bundle.ServerCA.Issue(pki.CertRequest{
		CommonName: "kube-apiserver",
		Server:     true,
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), serviceIP},
	})
	if err != nil {
		return f, err
	}
	proxyClient, err := bundle.RequestHeaderCA.Issue(pki.CertRequest{CommonName: "front-proxy-client"})
	if err != nil {
		return f, err
	}
	saPub, err := bundle.ServiceAccountPublicKeyPEM()
	if err != nil {
		return f, err
	}
	for path, data := range map[string][]byte{
		f.serverCA:        bundle.ServerCA.CertPEM,
		f.clientCA:        bundle.ClientCA.CertPEM,
		f.clientCAKey:     bundle.ClientCA.KeyPEM,
		f.requestHeaderCA: bundle.RequestHeaderCA.CertPEM,
		f.servingCert:     serving.CertPEM,
		f.servingKey:      serving.KeyPEM,
		f.proxyClientCert: proxyClient.CertPEM,
		f.proxyClientKey:  proxyClient.KeyPEM,
		f.saKey:           bundle.ServiceAccountKey,
		f.saPub:           saPub,
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	for path, id := range map[string]pki.CertRequest{
		f.admin:             {CommonName: "localkube-admin", Organizations: []string{"system:masters"}},
		f.controllerManager: {CommonName: "system:kube-controller-manager"},
		f.scheduler:         {CommonName: "system:kube-scheduler"},
	} {
		client, err := bundle.ClientCA.Issue(id)
		if err != nil {
			return f, err
		}
		if err := writeKubeconfig(path, server, bundle.ServerCA.CertPEM, client); err != nil {
			return f, err
		}
	}
	return f, nil
}

func writeKubeconfig(path, server string, caPEM []byte, client pki.KeyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["local"] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM, ClientKeyData: client.KeyPEM}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "local"}
	cfg.CurrentContext = "local"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}
