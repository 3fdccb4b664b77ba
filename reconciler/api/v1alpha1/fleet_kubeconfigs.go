package v1alpha1

import "time"

// DefaultCertificateLifetime is how long a tenant's client certificate is
// valid unless the Fleet says otherwise: 90 days.
const DefaultCertificateLifetime = 90 * 24 * time.Hour

// DefaultCommitAuthor signs warren's commits unless the Fleet names another.
var DefaultCommitAuthor = CommitAuthor{Name: "warren", Email: "warren@noreply.warren.dev"}

// KubeconfigPath is the repository folder kubeconfigs are published in.
func (k *KubeconfigPublishing) KubeconfigPath() string {
	if k == nil || k.Path == "" {
		return DefaultKubeconfigPath
	}
	return k.Path
}

// Lifetime is the tenant client certificate lifetime.
func (k *KubeconfigPublishing) Lifetime() time.Duration {
	if k == nil || k.CertificateLifetime == nil || k.CertificateLifetime.Duration <= 0 {
		return DefaultCertificateLifetime
	}
	return k.CertificateLifetime.Duration
}

// CommitAuthor is who signs the publisher's commits.
func (k *KubeconfigPublishing) CommitAuthor() CommitAuthor {
	if k == nil || k.Author == nil || k.Author.Name == "" || k.Author.Email == "" {
		return DefaultCommitAuthor
	}
	return *k.Author
}
