package bootstrap

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/warren-dev/warren/reconciler/pki"
)

// mountedPKI is a new cluster PKI written as its Secret is mounted: the
// bundle, a scratch dir and the mounted dir in it.
func mountedPKI(t *testing.T) (*pki.Bundle, string, string) {
	t.Helper()
	bundle, err := pki.Generate("demo")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range bundle.SecretData() {
		if err := os.WriteFile(filepath.Join(pkiDir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return bundle, dir, pkiDir
}

func TestTheInitContainerIssuesWhatTheControlPlaneReads(t *testing.T) {
	_, dir, pkiDir := mountedPKI(t)
	o, err := Parse([]string{"--pki-dir=" + pkiDir, "--out-dir=" + filepath.Join(dir, "data", "pki"),
		"--virtual-kubeconfig=" + filepath.Join(dir, "data", "kubeconfig.yaml"), "--service-cidr=10.96.0.0/16",
		"--tls-san=demo.vc-demo.svc", "--tls-san=demo.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"apiserver.crt", "apiserver.key", "front-proxy-client.crt", "front-proxy-client.key", "controller-manager.conf"} {
		info, err := os.Stat(filepath.Join(dir, "data", "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, info.Mode().Perm())
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "data", "pki", "apiserver.crt"))
	block, _ := pem.Decode(raw)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, "demo.vc-demo.svc") || !slices.Contains(cert.DNSNames, "demo.example.com") {
		t.Errorf("serving certificate names %v", cert.DNSNames)
	}
	cfg, err := clientcmd.LoadFromFile(filepath.Join(dir, "data", "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		if c.Server != "https://127.0.0.1:6443" {
			t.Errorf("admin kubeconfig server %s", c.Server)
		}
	}
}

func TestAMissingCAIsNamed(t *testing.T) {
	err := Run(Options{PKIDir: t.TempDir(), OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), pki.ServerCACertKey) {
		t.Fatalf("error %v does not name the missing file", err)
	}
}

// Both distros get the kubelet API's credentials: the API server's client
// certificate and the client CA that verifies it, and the syncer's serving
// certificate for loopback, which the server CA verifies. With
// --kubelet-only (k3s) nothing of the control plane's is written.
func TestTheKubeletAPICredentialsAreIssuedFromTheClusterCAs(t *testing.T) {
	bundle, dir, pkiDir := mountedPKI(t)
	out := filepath.Join(dir, "out")
	o, err := Parse([]string{"--pki-dir=" + pkiDir, "--out-dir=" + out, "--kubelet-only", "--virtual-kubeconfig=" + filepath.Join(dir, "kubeconfig.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig.yaml")); !os.IsNotExist(err) {
		t.Errorf("--kubelet-only wrote the admin kubeconfig (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(out, "apiserver.crt")); !os.IsNotExist(err) {
		t.Errorf("--kubelet-only wrote a control-plane certificate (%v)", err)
	}
	read := func(name string) *x509.Certificate {
		raw, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(raw)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	roots := func(ca *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca); return p }
	client, serving, clientCA := read(KubeletClientCertFile), read(KubeletServingCertFile), read(ClientCAFile)
	if client.Subject.CommonName != pki.KubeletClientName {
		t.Errorf("client certificate of %q", client.Subject.CommonName)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: roots(clientCA), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the API server's client certificate does not verify against the copied client CA: %v", err)
	}
	serverCA, _ := bundle.ServerCA.Certificate()
	if _, err := serving.Verify(x509.VerifyOptions{Roots: roots(serverCA), DNSName: KubeletAddress}); err != nil {
		t.Errorf("the syncer's serving certificate does not verify for %s: %v", KubeletAddress, err)
	}
	for _, f := range []string{KubeletClientKeyFile, KubeletServingKeyFile} {
		if info, err := os.Stat(filepath.Join(out, f)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, info, err)
		}
	}
}
