// Package pki makes and reads a virtual cluster's certificate authorities:
// the cluster (serving) CA, the client CA, the front-proxy (request-header)
// CA and the service-account signing key. The reconciler generates a Bundle
// once per cluster and keeps it in a host Secret; everything else only reads
// it. This package never talks to an API server and never logs key material.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Secret keys of a Bundle. They match the file names k3s reads from
// <data-dir>/server/tls/ so the rendered pod can copy them there unchanged.
const (
	ServerCACertKey        = "server-ca.crt"
	ServerCAKeyKey         = "server-ca.key"
	ClientCACertKey        = "client-ca.crt"
	ClientCAKeyKey         = "client-ca.key"
	RequestHeaderCACertKey = "request-header-ca.crt"
	RequestHeaderCAKeyKey  = "request-header-ca.key"
	ServiceAccountKeyKey   = "service.key"
)

// caLifetime is long on purpose: rotating a cluster's CA invalidates every
// credential ever issued for it, which warren never does behind a tenant's back.
const caLifetime = 10 * 365 * 24 * time.Hour

// KeyPair is a PEM certificate and its PEM private key.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Bundle is everything a cluster's control plane needs to trust and be trusted.
type Bundle struct {
	ServerCA        KeyPair
	ClientCA        KeyPair
	RequestHeaderCA KeyPair
	// ServiceAccountKey is the PEM private key that signs service-account
	// tokens: ECDSA P-256 for clusters made now, RSA-2048 for clusters made
	// before (a cluster keeps its key for life: rotating it would void every
	// token its workloads hold).
	ServiceAccountKey []byte
}

// Generate makes a new Bundle whose CA common names start with prefix.
func Generate(prefix string) (*Bundle, error) {
	var b Bundle
	var err error
	if b.ServerCA, err = newCA(prefix + "-server-ca"); err != nil {
		return nil, err
	}
	if b.ClientCA, err = newCA(prefix + "-client-ca"); err != nil {
		return nil, err
	}
	if b.RequestHeaderCA, err = newCA(prefix + "-request-header-ca"); err != nil {
		return nil, err
	}
	// ECDSA P-256 (tokens signed ES256): kube-apiserver and
	// kube-controller-manager read EC keys as they read RSA ones (client-go's
	// keyutil), and so does k3s (its service.current.key is the first key of
	// service.key, read with keyutil). An RSA-2048 key took most of a cold
	// start's PKI time.
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating service-account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("encoding service-account key: %w", err)
	}
	b.ServiceAccountKey = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return &b, nil
}

// SecretName is the host Secret that holds cluster's bundle.
func SecretName(cluster string) string { return cluster + "-pki" }

// SecretData returns the Bundle as the data of a Secret.
func (b *Bundle) SecretData() map[string][]byte {
	return map[string][]byte{
		ServerCACertKey:        b.ServerCA.CertPEM,
		ServerCAKeyKey:         b.ServerCA.KeyPEM,
		ClientCACertKey:        b.ClientCA.CertPEM,
		ClientCAKeyKey:         b.ClientCA.KeyPEM,
		RequestHeaderCACertKey: b.RequestHeaderCA.CertPEM,
		RequestHeaderCAKeyKey:  b.RequestHeaderCA.KeyPEM,
		ServiceAccountKeyKey:   b.ServiceAccountKey,
	}
}

// FromSecretData reads a Bundle back from a Secret's data and checks that
// every pair parses and matches.
func FromSecretData(data map[string][]byte) (*Bundle, error) {
	b := &Bundle{
		ServerCA:          KeyPair{data[ServerCACertKey], data[ServerCAKeyKey]},
		ClientCA:          KeyPair{data[ClientCACertKey], data[ClientCAKeyKey]},
		RequestHeaderCA:   KeyPair{data[RequestHeaderCACertKey], data[RequestHeaderCAKeyKey]},
		ServiceAccountKey: data[ServiceAccountKeyKey],
	}
	for name, kp := range map[string]KeyPair{"server CA": b.ServerCA, "client CA": b.ClientCA, "request-header CA": b.RequestHeaderCA} {
		if _, _, err := kp.parse(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if _, err := b.ServiceAccountSigner(); err != nil {
		return nil, err
	}
	return b, nil
}

// ServiceAccountSigner parses the service-account signing key (ECDSA, or
// RSA for a cluster made before warren switched).
func (b *Bundle) ServiceAccountSigner() (crypto.Signer, error) {
	block, _ := pem.Decode(b.ServiceAccountKey)
	if block == nil {
		return nil, errors.New("service-account key: no PEM block")
	}
	key, err := parseKey(block)
	if err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	return key, nil
}

// CertRequest describes a leaf certificate to issue.
type CertRequest struct {
	CommonName    string
	Organizations []string
	DNSNames      []string
	IPs           []net.IP
	// Server makes a serving certificate; otherwise a client certificate.
	Server   bool
	Lifetime time.Duration
}

// Issue signs a new leaf certificate with this CA.
func (kp KeyPair) Issue(req CertRequest) (KeyPair, error) {
	caCert, caKey, err := kp.parse()
	if err != nil {
		return KeyPair{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generating key for %q: %w", req.CommonName, err)
	}
	lifetime := req.Lifetime
	if lifetime == 0 {
		lifetime = 365 * 24 * time.Hour
	}
	serial, err := newSerial()
	if err != nil {
		return KeyPair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName, Organization: req.Organizations},
		DNSNames:     req.DNSNames,
		IPAddresses:  req.IPs,
		NotBefore:    now.Add(-time.Minute), // tolerate small clock skew between processes
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if req.Server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return sign(tmpl, caCert, caKey, key)
}

// Certificate parses the certificate half of the pair.
func (kp KeyPair) Certificate() (*x509.Certificate, error) {
	return parseCert(kp.CertPEM)
}

func (kp KeyPair) parse() (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(kp.CertPEM)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(kp.KeyPEM)
	if block == nil {
		return nil, nil, errors.New("private key: no PEM block")
	}
	key, err := parseKey(block)
	if err != nil {
		return nil, nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("private key does not match certificate")
	}
	return cert, key, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	return cert, nil
}

func parseKey(block *pem.Block) (crypto.Signer, error) {
	switch block.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		signer, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("private key of type %T cannot sign", k)
		}
		return signer, nil
	}
	return nil, fmt.Errorf("private key: unsupported PEM type %q", block.Type)
}

func newCA(commonName string) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generating %s key: %w", commonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return KeyPair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return sign(tmpl, tmpl, key, key)
}

func sign(tmpl, parent *x509.Certificate, parentKey crypto.Signer, key *ecdsa.PrivateKey) (KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encoding key for %q: %w", tmpl.Subject.CommonName, err)
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	return serial, nil
}
