// Package kubeconfig makes the tenant's kubeconfig for a virtual cluster and
// seals it for Git: it mints a client certificate from the cluster's client
// CA with exactly the identity the tenant policy grants, writes a kubeconfig
// that trusts only the cluster's own CA, and seals it with the host's
// sealed-secrets public key into a SealedSecret bound to one namespace and
// name. It decides, with a keyed hash, whether a file in Git is still current,
// so an unchanged kubeconfig is never rewritten.
//
// It never writes a plaintext credential anywhere but into the sealed payload
// (not into logs, errors, annotations or files), never issues a certificate in
// the system:masters group, never emits insecure-skip-tls-verify, and never
// falls back to plaintext when no sealing certificate is available. It does
// not talk to Git: callers commit the bytes it returns.
package kubeconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/warren-dev/warren/reconciler/pki"
)

// DefaultLifetime is how long a tenant's client certificate is valid unless
// the Fleet says otherwise.
const DefaultLifetime = 90 * 24 * time.Hour

// mastersGroup bypasses every authorization check in Kubernetes; a tenant
// credential must never carry it.
const mastersGroup = "system:masters"

// Identity is who the tenant is inside its virtual cluster: the user name
// and groups its RBAC bindings (the policy's `access` grants) refer to.
type Identity struct {
	User   string
	Groups []string
}

// Validate refuses identities that would grant more than RBAC bindings do:
// system:masters, and any other reserved system: user or group name.
func (id Identity) Validate() error {
	if strings.TrimSpace(id.User) == "" {
		return errors.New("tenant identity: user name is empty")
	}
	if strings.HasPrefix(id.User, "system:") {
		return fmt.Errorf("tenant identity: user %q is in the reserved system: namespace of names", id.User)
	}
	for _, g := range id.Groups {
		switch {
		case g == mastersGroup:
			return fmt.Errorf("tenant identity: group %q bypasses all authorization and is never granted", g)
		case strings.HasPrefix(g, "system:"):
			return fmt.Errorf("tenant identity: group %q is in the reserved system: namespace of names", g)
		case strings.TrimSpace(g) == "":
			return errors.New("tenant identity: a group name is empty")
		}
	}
	return nil
}

// IssueCredentials signs a new client certificate for id with the cluster's
// client CA. A zero lifetime means DefaultLifetime.
func IssueCredentials(clientCA pki.KeyPair, id Identity, lifetime time.Duration) (pki.KeyPair, error) {
	if err := id.Validate(); err != nil {
		return pki.KeyPair{}, err
	}
	if lifetime < 0 {
		return pki.KeyPair{}, fmt.Errorf("credential lifetime %s is negative", lifetime)
	}
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	kp, err := clientCA.Issue(pki.CertRequest{CommonName: id.User, Organizations: groups, Lifetime: lifetime})
	if err != nil {
		return pki.KeyPair{}, fmt.Errorf("issuing client certificate for %q: %w", id.User, err)
	}
	return kp, nil
}

// RenewalTime is when a certificate is due for renewal: after two thirds of
// its life, so a tenant always holds one with a third of its life left.
func RenewalTime(cert *x509.Certificate) time.Time {
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(life / 3 * 2)
}

// NeedsRenewal says whether the PEM client certificate is at or past two
// thirds of its life at now.
func NeedsRenewal(certPEM []byte, now time.Time) (bool, error) {
	cert, err := (pki.KeyPair{CertPEM: certPEM}).Certificate()
	if err != nil {
		return false, fmt.Errorf("tenant client certificate: %w", err)
	}
	return !now.Before(RenewalTime(cert)), nil
}

// CredentialChange says why EnsureCredentials issued a new certificate.
type CredentialChange string

const (
	// CredentialsKept: the current certificate is still good.
	CredentialsKept CredentialChange = ""
	// CredentialsNew: there was none.
	CredentialsNew CredentialChange = "new credentials"
	// CredentialsRenewed: the current one reached two thirds of its life.
	CredentialsRenewed CredentialChange = "renewal"
	// CredentialsIdentityChanged: the policy now grants another user or groups.
	CredentialsIdentityChanged CredentialChange = "identity changed"
	// CredentialsUnusable: the current one is unreadable or not signed by the cluster's client CA.
	CredentialsUnusable CredentialChange = "credentials unusable"
)

// EnsureCredentials keeps current when it is a readable pair for id, signed
// by clientCA and not yet due for renewal at now; otherwise it issues a new
// one and says why. current may be nil.
func EnsureCredentials(clientCA pki.KeyPair, current *pki.KeyPair, id Identity, lifetime time.Duration, now time.Time) (pki.KeyPair, CredentialChange, error) {
	change := credentialChange(clientCA, current, id, now)
	if change == CredentialsKept {
		return *current, CredentialsKept, nil
	}
	kp, err := IssueCredentials(clientCA, id, lifetime)
	if err != nil {
		return pki.KeyPair{}, change, err
	}
	return kp, change, nil
}

func credentialChange(clientCA pki.KeyPair, current *pki.KeyPair, id Identity, now time.Time) CredentialChange {
	if current == nil || len(current.CertPEM) == 0 {
		return CredentialsNew
	}
	cert, err := current.Certificate()
	if err != nil || !keyMatches(*current) {
		return CredentialsUnusable
	}
	ca, err := clientCA.Certificate()
	if err != nil || cert.CheckSignatureFrom(ca) != nil || !bytes.Equal(cert.RawIssuer, ca.RawSubject) {
		return CredentialsUnusable
	}
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	groups = slices.Compact(groups)
	if cert.Subject.CommonName != id.User || !slices.Equal(cert.Subject.Organization, groups) {
		return CredentialsIdentityChanged
	}
	if !now.Before(RenewalTime(cert)) {
		return CredentialsRenewed
	}
	return CredentialsKept
}

// keyMatches reports whether the pair's private key belongs to its certificate.
func keyMatches(kp pki.KeyPair) bool {
	_, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	return err == nil
}
