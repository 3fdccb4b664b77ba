package kubeconfig

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/warren-dev/warren/reconciler/pki"
)

// CredentialsSecretName is the host Secret, in the cluster's host namespace,
// that keeps the tenant's current client certificate so it is reused (and
// the kubeconfig stays unchanged) until it is due for renewal.
func CredentialsSecretName(cluster string) string { return cluster + "-tenant-credentials" }

// InHostServer is the API address of a cluster exposed only inside the host:
// its Service's DNS name.
func InHostServer(service, namespace string) string {
	return "https://" + service + "." + namespace + ".svc:443"
}

// Cluster is what the publisher needs to know about one Ready cluster.
type Cluster struct {
	// Name is the virtual cluster's name.
	Name string
	// HostNamespace holds its PKI and the tenant-credentials Secret.
	HostNamespace string
	// PKI is the cluster's bundle (from its PKI Secret).
	PKI *pki.Bundle
	// Identity is what the tenant policy grants.
	Identity Identity
	// Lifetime of the client certificate; DefaultLifetime when zero.
	Lifetime time.Duration
	// Server is the API address from the cluster's expose setting.
	Server string
	// Target is the Secret the kubeconfig is unsealed into (from the
	// cluster's kubeconfig field, already admitted by its policy).
	Target Target
	// Labels and Owners go on the tenant-credentials Secret (owners: the
	// cluster's VirtualCluster, so deleting it removes the credentials).
	Labels map[string]string
	Owners []metav1.OwnerReference
}

// Publisher turns Ready clusters into kubeconfig files. One Publisher serves
// one reconcile: fetch the sealing key and hash key once, then Publish each
// cluster.
type Publisher struct {
	Client     kubernetes.Interface
	SealingKey *SealingKey
	HashKey    []byte
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Publication is one cluster's file and why it changed.
type Publication struct {
	Cluster string
	// Path is the file's path in the repository (under the dir given to Publish).
	Path string
	// File is the content to commit; Previous, byte for byte, when Change is Unchanged.
	File []byte
	// Change says why the file changed; Unchanged means: no commit.
	Change Change
	// Credentials says whether (and why) a new client certificate was issued.
	Credentials CredentialChange
}

// Reason is a short, secret-free phrase for a commit message or condition:
// "new cluster", "renewal", "sealing key rotated", ...
func (p Publication) Reason() string {
	switch {
	case p.Change == Unchanged:
		return "unchanged"
	case p.Change == ContentChanged && p.Credentials != CredentialsKept:
		return string(p.Credentials)
	}
	return string(p.Change)
}

// Publish makes cluster c's kubeconfig file under dir (DefaultDir when
// empty), given the file now in Git (nil if none). It issues or renews the
// tenant's client certificate when due and stores it in the host
// credentials Secret before sealing, so a failure never loses it.
func (pub *Publisher) Publish(ctx context.Context, dir string, c Cluster, previous []byte) (Publication, error) {
	out := Publication{Cluster: c.Name, Path: FilePath(dir, c.Name)}
	if c.PKI == nil {
		return out, fmt.Errorf("cluster %s: no PKI bundle", c.Name)
	}
	if pub.SealingKey == nil {
		return out, fmt.Errorf("cluster %s: %w: refusing to publish a kubeconfig unsealed", c.Name, ErrNoSealingCertificate)
	}
	now := time.Now
	if pub.Now != nil {
		now = pub.Now
	}
	secretName := CredentialsSecretName(c.Name)
	current, err := LoadCredentials(ctx, pub.Client, c.HostNamespace, secretName)
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	creds, change, err := EnsureCredentials(c.PKI.ClientCA, current, c.Identity, c.Lifetime, now())
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	out.Credentials = change
	if change != CredentialsKept {
		if err := StoreCredentials(ctx, pub.Client, c.HostNamespace, secretName, c.Labels, c.Owners, creds); err != nil {
			return out, fmt.Errorf("cluster %s: %w", c.Name, err)
		}
	}
	plain, err := Build(Config{ClusterName: c.Name, Server: c.Server, ServerCA: c.PKI.ServerCA.CertPEM, User: c.Identity.User, Credentials: creds})
	if err != nil {
		return out, err
	}
	res, err := Seal(SealRequest{Cluster: c.Name, Target: c.Target, Kubeconfig: plain, SealingKey: pub.SealingKey, HashKey: pub.HashKey, Previous: previous})
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	out.File, out.Change = res.File, res.Change
	return out, nil
}

// Removed is the reason given for deleting a pruned cluster's file.
const Removed Change = "cluster removed"

// CommitMessage says what changed and why, for one commit holding every
// change of a reconcile; it never includes credential material. removed
// lists clusters whose files are deleted. It returns "" when nothing changed.
func CommitMessage(changed []Publication, removed []string) string {
	var lines []string
	for _, p := range changed {
		if p.Change == Unchanged {
			continue
		}
		lines = append(lines, fmt.Sprintf("- %s (%s): %s", p.Cluster, p.Path, p.Reason()))
	}
	for _, name := range removed {
		lines = append(lines, fmt.Sprintf("- %s: %s", name, Removed))
	}
	if len(lines) == 0 {
		return ""
	}
	sort.Strings(lines)
	subject := fmt.Sprintf("kubeconfigs: update %d cluster(s)", len(lines))
	if len(lines) == 1 {
		subject = "kubeconfigs: " + strings.TrimPrefix(lines[0], "- ")
	}
	return subject + "\n\n" + strings.Join(lines, "\n") + "\n\nSealed for the host's sealed-secrets controller; no plaintext credential is in this commit.\n"
}

// IsSealingUnavailable reports whether err means there is no usable sealing
// certificate (missing or expired), the condition a caller reports instead
// of publishing.
func IsSealingUnavailable(err error) bool {
	return errors.Is(err, ErrNoSealingCertificate) || errors.Is(err, ErrSealingCertificateExpired)
}

// The VirtualCluster condition a caller sets from a Publication, and its reasons.
const (
	ConditionPublished = "KubeconfigPublished"

	// ReasonPublished: the file is in Git at the commit the message names.
	ReasonPublished = "Published"
	// ReasonSealingUnavailable: no usable sealing certificate (missing or
	// expired); nothing was written.
	ReasonSealingUnavailable = "SealingCertificateUnavailable"
	// ReasonPushPending: the file is committed locally, its push not yet accepted.
	ReasonPushPending = "PushPending"
	// ReasonPushRejected: the remote refused the push; the message says why.
	ReasonPushRejected = "PushRejected"
	// ReasonFailed: any other failure to make the file.
	ReasonFailed = "PublishFailed"
)

// StaleFiles lists the kubeconfig files under dir (DefaultDir when empty)
// among files (repository paths) whose cluster is not in keep: the files of
// clusters removed from the repository, to delete in the same commit.
// Anything else under dir (a README, a kustomization.yaml) is left alone.
func StaleFiles(dir string, files []string, keep map[string]bool) []string {
	if dir == "" {
		dir = DefaultDir
	}
	var stale []string
	for _, f := range files {
		cluster, ok := strings.CutSuffix(strings.TrimPrefix(f, dir+"/"), ".yaml")
		if !ok || strings.Contains(cluster, "/") || cluster == "kustomization" || keep[cluster] {
			continue
		}
		if FilePath(dir, cluster) != f {
			continue
		}
		stale = append(stale, f)
	}
	sort.Strings(stale)
	return stale
}
