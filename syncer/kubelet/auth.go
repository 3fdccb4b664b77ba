package kubelet

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/go-logr/logr"
)

// authenticator accepts the virtual API server's kubelet client
// certificate and nothing else.
type authenticator struct {
	roots    *x509.CertPool
	expected []byte // DER of the one accepted certificate
}

func newAuthenticator(caFile, certFile string) (*authenticator, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: client CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("kubelet API: client CA %s: no PEM certificate", caFile)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: the API server's client certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("kubelet API: %s: no PEM certificate", certFile)
	}
	a := &authenticator{roots: roots, expected: block.Bytes}
	// The file must hold a certificate the CA verifies, or nothing ever would.
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: %s: %w", certFile, err)
	}
	if err := a.check([]*x509.Certificate{cert}); err != nil {
		return nil, fmt.Errorf("kubelet API: %s: %w", certFile, err)
	}
	return a, nil
}

// check verifies a presented chain: issued by the client CA for client
// authentication, still valid, and exactly the API server's certificate
// (another certificate of the same CA, say one a tenant had signed through
// the virtual cluster's CSR API, is refused).
func (a *authenticator) check(chain []*x509.Certificate) error {
	leaf := chain[0]
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: a.roots, Intermediates: intermediates,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return err
	}
	if !bytes.Equal(leaf.Raw, a.expected) {
		return errors.New("not the virtual API server's kubelet client certificate")
	}
	return nil
}

// wrap logs every check and lets only the API server through: no client
// certificate is 401, any other certificate 403. It logs who presented what
// (subject and issuer names), never a certificate, key or query string
// (exec commands can carry secrets).
func (a *authenticator) wrap(log logr.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := log.WithValues("remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			l.Info("refused: no client certificate", "status", http.StatusUnauthorized)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		l = l.WithValues("subject", leaf.Subject.CommonName, "issuer", leaf.Issuer.CommonName)
		if err := a.check(r.TLS.PeerCertificates); err != nil {
			l.Info("refused: client certificate is not the virtual API server's", "reason", err.Error(), "status", http.StatusForbidden)
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		l.Info("accepted the virtual API server")
		next.ServeHTTP(w, r)
	})
}
