package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"testing"
)

func TestBundleSurvivesASecretRoundTrip(t *testing.T) {
	b, err := Generate("team-a")
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromSecretData(b.SecretData())
	if err != nil {
		t.Fatalf("reading the bundle back: %v", err)
	}
	if string(back.ClientCA.CertPEM) != string(b.ClientCA.CertPEM) || string(back.ServiceAccountKey) != string(b.ServiceAccountKey) {
		t.Fatal("round trip changed the bundle")
	}
	cert, err := back.ServerCA.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "team-a-server-ca" || !cert.IsCA {
		t.Fatalf("server CA: got CN %q, IsCA %v", cert.Subject.CommonName, cert.IsCA)
	}
}

func TestIssuedCertificatesVerifyAgainstTheirCA(t *testing.T) {
	b, err := Generate("c")
	if err != nil {
		t.Fatal(err)
	}
	serving, err := b.ServerCA.Issue(CertRequest{CommonName: "kube-apiserver", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	client, err := b.ClientCA.Issue(CertRequest{CommonName: "alice", Organizations: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ca, leaf KeyPair, usage x509.ExtKeyUsage, dns string) error {
		caCert, _ := ca.Certificate()
		leafCert, _ := leaf.Certificate()
		pool := x509.NewCertPool()
		pool.AddCert(caCert)
		_, err := leafCert.Verify(x509.VerifyOptions{Roots: pool, DNSName: dns, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	if err := verify(b.ServerCA, serving, x509.ExtKeyUsageServerAuth, "localhost"); err != nil {
		t.Fatalf("serving certificate: %v", err)
	}
	if err := verify(b.ClientCA, client, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatalf("client certificate: %v", err)
	}
	if err := verify(b.ServerCA, client, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("a client certificate verified against the wrong CA")
	}
}

func TestMismatchedKeyIsRejected(t *testing.T) {
	a, _ := Generate("a")
	other, _ := Generate("b")
	data := a.SecretData()
	data[ClientCAKeyKey] = other.ClientCA.KeyPEM
	_, err := FromSecretData(data)
	if err == nil || !strings.Contains(err.Error(), "client CA") {
		t.Fatalf("want an error naming the client CA, got %v", err)
	}
}

func TestControlPlaneCredentialsServeTheirNamesAndTrustTheirCA(t *testing.T) {
	b, err := Generate("c")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := b.ControlPlane(ControlPlaneRequest{Server: "https://127.0.0.1:6443", ServiceCIDR: "10.96.0.0/16", SANs: []string{"c.vc-c.svc", "192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := cp.Serving.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := b.ServerCA.Certificate()
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	for _, name := range []string{"c.vc-c.svc", "kubernetes.default.svc", "10.96.0.1", "192.0.2.7", "127.0.0.1"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("the serving certificate does not serve %s: %v", name, err)
		}
	}
	for name, kc := range map[string][]byte{"admin": cp.Admin, "controller-manager": cp.ControllerManager, "scheduler": cp.Scheduler} {
		if !strings.Contains(string(kc), "server: https://127.0.0.1:6443") || !strings.Contains(string(kc), "certificate-authority-data") {
			t.Errorf("%s kubeconfig lacks the server or its CA:\n%s", name, kc)
		}
	}
}

func TestNewClustersSignTokensWithAnECDSAKey(t *testing.T) {
	b, err := Generate("c")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := b.ServiceAccountSigner()
	if err != nil {
		t.Fatal(err)
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("service-account key is %T, want an ECDSA P-256 key", signer)
	}
	if block, _ := pem.Decode(b.ServiceAccountKey); block == nil || block.Type != "EC PRIVATE KEY" {
		t.Fatalf("service-account key is not a PEM EC PRIVATE KEY:\n%s", b.ServiceAccountKey)
	}
}

// A cluster made before the switch keeps its RSA key: its Secret still reads.
func TestAClusterMadeWithAnRSAKeyKeepsIt(t *testing.T) {
	b, err := Generate("old")
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	data := b.SecretData()
	data[ServiceAccountKeyKey] = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	back, err := FromSecretData(data)
	if err != nil {
		t.Fatalf("an RSA-keyed PKI Secret no longer reads: %v", err)
	}
	signer, err := back.ServiceAccountSigner()
	if err != nil {
		t.Fatal(err)
	}
	if !rsaKey.PublicKey.Equal(signer.Public()) {
		t.Fatal("the RSA service-account key was not kept")
	}
}

// BenchmarkGenerate is the PKI cost of one new cluster: three ECDSA CAs and
// its service-account key (RSA-2048 before issue 14, measured alongside).
func BenchmarkGenerate(b *testing.B) {
	b.Run("bundle", func(b *testing.B) {
		for range b.N {
			if _, err := Generate("bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rsa-2048-service-account-key", func(b *testing.B) {
		for range b.N {
			if _, err := rsa.GenerateKey(rand.Reader, 2048); err != nil {
				b.Fatal(err)
			}
		}
	})
}
