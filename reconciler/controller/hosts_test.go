package controller

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// A HostCluster's kubeconfig is a hostile input: one that would turn TLS
// verification off, send credentials over plain http, run a program in the
// reconciler or read its files is refused, and no refusal quotes the
// kubeconfig (its token least of all).
func TestAHostKubeconfigThatWeakensTheConnectionIsRefused(t *testing.T) {
	const token = "s3cret-token-never-logged"
	good := func() *clientcmdapi.Config {
		c := clientcmdapi.NewConfig()
		c.Clusters["east"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443", CertificateAuthorityData: []byte("not checked here")}
		c.AuthInfos["warren"] = &clientcmdapi.AuthInfo{Token: token}
		c.Contexts["east"] = &clientcmdapi.Context{Cluster: "east", AuthInfo: "warren"}
		c.CurrentContext = "east"
		return c
	}
	for _, tc := range []struct {
		story  string
		change func(c *clientcmdapi.Config)
		says   string
	}{
		{"insecure-skip-tls-verify", func(c *clientcmdapi.Config) {
			c.Clusters["east"].InsecureSkipTLSVerify, c.Clusters["east"].CertificateAuthorityData = true, nil
		}, "insecure-skip-tls-verify"},
		{"a plain http server", func(c *clientcmdapi.Config) { c.Clusters["east"].Server = "http://127.0.0.1:8080" }, "https://"},
		{"an exec plugin", func(c *clientcmdapi.Config) {
			c.AuthInfos["warren"].Exec = &clientcmdapi.ExecConfig{Command: "/bin/sh", APIVersion: "client.authentication.k8s.io/v1"}
		}, "exec or auth-provider"},
		{"a CA file of the reconciler's", func(c *clientcmdapi.Config) { c.Clusters["east"].CertificateAuthority = "/etc/ssl/ca.pem" }, "certificate-authority file"},
		{"a token file of the reconciler's", func(c *clientcmdapi.Config) {
			c.AuthInfos["warren"].TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}, "tokenFile"},
		{"no current context", func(c *clientcmdapi.Config) { c.CurrentContext = "" }, "not complete"},
	} {
		t.Run(tc.story, func(t *testing.T) {
			c := good()
			tc.change(c)
			raw, err := clientcmd.Write(*c)
			if err != nil {
				t.Fatal(err)
			}
			_, err = restConfigOf(raw, nil)
			if err == nil || !errors.Is(err, errInvalidKubeconfig) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %v, want an unusable kubeconfig saying %q", err, tc.says)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
	raw, _ := clientcmd.Write(*good())
	cfg, err := restConfigOf(raw, nil)
	if err != nil || cfg.Insecure || cfg.Host != "https://127.0.0.1:6443" || cfg.Timeout == 0 {
		t.Fatalf("a good kubeconfig: %+v, %v", cfg, err)
	}
	if _, err := restConfigOf([]byte("token: "+token+"\n\t:::"), nil); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("garbage: %v", err)
	}
}
