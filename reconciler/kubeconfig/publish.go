package kubeconfig

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// Host is the host cluster the cluster runs on, which keeps the
	// tenant-credentials Secret; the Publisher's Client when nil.
	Host kubernetes.Interface
}

// Publisher turns Ready clusters into kubeconfig files. Keep one for the
// life of the reconciler; each reconcile sets SealingKey and HashKey (fetched
// once), then calls Publish for each cluster.
//
// It remembers, per cluster, the inputs and file of its last unchanged
// result, so a reconcile where nothing changed costs a hash per cluster: no
// API call, no kubeconfig build, no parse of the file. The memory is
// rechecked in full at the certificate's renewal time and at least every
// recheckInterval.
type Publisher struct {
	Client     kubernetes.Interface
	SealingKey *SealingKey
	HashKey    []byte
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu        sync.Mutex
	unchanged map[string]remembered
}

// recheckInterval bounds how long a remembered "unchanged" is trusted, so a
// credentials Secret changed behind warren's back is noticed.
const recheckInterval = 10 * time.Minute

type remembered struct {
	inputs    [sha256.Size]byte
	renewAt   time.Time
	checkedAt time.Time
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
	inputs := pub.inputsOf(dir, c, previous)
	if pub.stillUnchanged(c.Name, inputs, now()) {
		out.File, out.Change = previous, Unchanged
		return out, nil
	}
	secretName := CredentialsSecretName(c.Name)
	host := pub.Client
	if c.Host != nil {
		host = c.Host
	}
	current, err := LoadCredentials(ctx, host, c.HostNamespace, secretName)
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	creds, change, err := EnsureCredentials(c.PKI.ClientCA, current, c.Identity, c.Lifetime, now())
	if err != nil {
		return out, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	out.Credentials = change
	if change != CredentialsKept {
		if err := StoreCredentials(ctx, host, c.HostNamespace, secretName, c.Labels, c.Owners, creds); err != nil {
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
	if res.Change == Unchanged {
		if cert, err := creds.Certificate(); err == nil {
			pub.remember(c.Name, remembered{inputs: inputs, renewAt: RenewalTime(cert), checkedAt: now()})
		}
	}
	return out, nil
}

// inputsOf hashes everything that decides a cluster's file, but the tenant
// credentials kept on the host (covered by renewAt and recheckInterval).
func (pub *Publisher) inputsOf(dir string, c Cluster, previous []byte) [sha256.Size]byte {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	groups := slices.Clone(c.Identity.Groups)
	slices.Sort(groups)
	for _, s := range []string{dir, c.Name, c.HostNamespace, c.Identity.User, strings.Join(groups, "\x00"), c.Lifetime.String(), c.Server, c.Target.Namespace, c.Target.Name, pub.SealingKey.Fingerprint} {
		field([]byte(s))
	}
	field(c.PKI.ClientCA.CertPEM)
	field(c.PKI.ServerCA.CertPEM)
	hashKeySum := sha256.Sum256(pub.HashKey)
	field(hashKeySum[:])
	field(previous)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func (pub *Publisher) stillUnchanged(cluster string, inputs [sha256.Size]byte, now time.Time) bool {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	r, ok := pub.unchanged[cluster]
	if !ok || r.inputs != inputs || !now.Before(r.renewAt) || now.Sub(r.checkedAt) >= recheckInterval || now.Before(r.checkedAt) {
		delete(pub.unchanged, cluster)
		return false
	}
	return true
}

func (pub *Publisher) remember(cluster string, r remembered) {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.unchanged == nil {
		pub.unchanged = map[string]remembered{}
	}
	pub.unchanged[cluster] = r
}

// Forget drops what the Publisher remembers about a cluster (call it when
// the cluster is removed).
func (pub *Publisher) Forget(cluster string) {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	delete(pub.unchanged, cluster)
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

// Changes is everything one reconcile changes in the repository: one commit.
// The caller writes, removes and commits it with its Git client (and, on a
// non-fast-forward push, applies the same Changes again on the new head).
type Changes struct {
	// Write maps repository paths to their new content.
	Write map[string][]byte
	// Remove lists repository paths to delete.
	Remove []string
	// Message is the commit message; it holds no credential material.
	Message string
}

// Empty says there is nothing to commit.
func (c Changes) Empty() bool { return len(c.Write) == 0 && len(c.Remove) == 0 }

// Collect gathers the changed publications and the stale files (from
// StaleFiles) of one reconcile into one set of Changes.
func Collect(pubs []Publication, stale []string) Changes {
	out := Changes{Write: map[string][]byte{}}
	var changed []Publication
	for _, p := range pubs {
		if p.Change == Unchanged {
			continue
		}
		out.Write[p.Path] = p.File
		changed = append(changed, p)
	}
	removed := make([]string, 0, len(stale))
	for _, f := range stale {
		out.Remove = append(out.Remove, f)
		removed = append(removed, strings.TrimSuffix(path.Base(f), ".yaml"))
	}
	out.Message = CommitMessage(changed, removed)
	return out
}
