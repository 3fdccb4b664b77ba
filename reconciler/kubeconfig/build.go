package kubeconfig

import (
	"errors"
	"fmt"
	"net/url"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"

	"github.com/warren-dev/warren/reconciler/pki"
)

// Config is what goes into a tenant's kubeconfig.
type Config struct {
	// ClusterName names the cluster, context and user entries.
	ClusterName string
	// Server is the https URL the tenant reaches the cluster's API at, as
	// the cluster's expose setting publishes it.
	Server string
	// ServerCA is the PEM CA the cluster's API serving certificate is
	// signed by: the kubeconfig's only trust root.
	ServerCA []byte
	// User is the tenant's user name (the client certificate's common name).
	User string
	// Credentials is the tenant's client certificate and key.
	Credentials pki.KeyPair
}

// Build writes the kubeconfig for c. The same input always gives the same bytes.
func Build(c Config) ([]byte, error) {
	if c.ClusterName == "" {
		return nil, errors.New("kubeconfig: cluster name is empty")
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: server address %q: %w", c.ClusterName, c.Server, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kubeconfig for %s: server address %q must be an https:// URL with a host", c.ClusterName, c.Server)
	}
	if _, err := cert.ParseCertsPEM(c.ServerCA); err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: server CA: %w", c.ClusterName, err)
	}
	if len(c.Credentials.CertPEM) == 0 || len(c.Credentials.KeyPEM) == 0 {
		return nil, fmt.Errorf("kubeconfig for %s: client certificate or key is empty", c.ClusterName)
	}
	user := c.User
	if user == "" {
		return nil, fmt.Errorf("kubeconfig for %s: user name is empty", c.ClusterName)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.ClusterName] = &clientcmdapi.Cluster{
		Server:                   c.Server,
		CertificateAuthorityData: c.ServerCA,
	}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.Credentials.CertPEM,
		ClientKeyData:         c.Credentials.KeyPEM,
	}
	cfg.Contexts[c.ClusterName] = &clientcmdapi.Context{Cluster: c.ClusterName, AuthInfo: user}
	cfg.CurrentContext = c.ClusterName
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig for %s: encoding: %w", c.ClusterName, err)
	}
	return out, nil
}
