package main

import (
	"crypto/x509"
	"path/filepath"
	"testing"
)

// The reconciler's image holds no CA bundle; it still trusts the public
// roots, so a Fleet on a public Git host over https can be fetched.
func TestPublicRootsWithoutACABundleOnTheMachine(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("SSL_CERT_FILE", none)
	t.Setenv("SSL_CERT_DIR", none)
	pool, err := x509.SystemCertPool()
	if err != nil {
		t.Fatal(err)
	}
	//nolint:staticcheck // Subjects is enough to see the pool is not empty.
	if n := len(pool.Subjects()); n < 50 {
		t.Fatalf("without a CA bundle the reconciler trusts %d roots; it needs the public ones to fetch over https", n)
	}
}
