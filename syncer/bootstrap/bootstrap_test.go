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

func TestTheInitContainerIssuesWhatTheControlPlaneReads(t *testing.T) {
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
