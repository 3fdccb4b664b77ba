package kubeconfig

import (
	"bytes"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
)

var tenant = Identity{User: "tenant:team-a", Groups: []string{"team-a-devs", "team-a"}}

func newBundle(t *testing.T) *pki.Bundle {
	t.Helper()
	b, err := newBundleB()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newBundleB() (*pki.Bundle, error) { return pki.Generate("test") }

// sealingPair is a sealed-secrets key pair made by sealed-secrets' own code.
func sealingPair(t testing.TB, validFor time.Duration) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, cert, err := sscrypto.GeneratePrivateKeyAndCert(2048, validFor, "sealed-secrets-test")
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func TestTenantCertificateCarriesThePolicyIdentityAndNeverMasters(t *testing.T) {
	b := newBundle(t)
	kp, err := IssueCredentials(b.ClientCA, tenant, 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "tenant:team-a" {
		t.Errorf("common name %q", cert.Subject.CommonName)
	}
	if got := strings.Join(cert.Subject.Organization, ","); got != "team-a,team-a-devs" {
		t.Errorf("organizations %q", got)
	}
	if life := cert.NotAfter.Sub(cert.NotBefore); life < DefaultLifetime || life > DefaultLifetime+2*time.Minute {
		t.Errorf("lifetime %s, want about %s", life, DefaultLifetime)
	}
	ca, _ := b.ClientCA.Certificate()
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("not signed by the cluster's client CA: %v", err)
	}

	for _, bad := range []Identity{
		{User: "tenant", Groups: []string{"system:masters"}},
		{User: "system:admin"},
		{User: "tenant", Groups: []string{"system:nodes"}},
		{User: ""},
	} {
		if _, err := IssueCredentials(b.ClientCA, bad, 0); err == nil {
			t.Errorf("identity %+v was accepted", bad)
		}
	}
}

func TestCertificatesAreRenewedAtTwoThirdsOfTheirLife(t *testing.T) {
	b := newBundle(t)
	kp, err := IssueCredentials(b.ClientCA, tenant, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := kp.Certificate()
	due := RenewalTime(cert)
	if want := cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3); due.Sub(want).Abs() > time.Second {
		t.Fatalf("renewal at %s, want %s", due, want)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{cert.NotBefore.Add(time.Hour), false},
		{due.Add(-time.Second), false},
		{due, true},
		{cert.NotAfter.Add(time.Hour), true},
	} {
		got, err := NeedsRenewal(kp.CertPEM, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("NeedsRenewal at %s = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestEnsureCredentialsKeepsAGoodCertificateAndSaysWhyItReplacesOne(t *testing.T) {
	b := newBundle(t)
	now := time.Now()
	first, change, err := EnsureCredentials(b.ClientCA, nil, tenant, 0, now)
	if err != nil || change != CredentialsNew {
		t.Fatalf("first: %v, %q", err, change)
	}
	kept, change, err := EnsureCredentials(b.ClientCA, &first, tenant, 0, now.Add(time.Hour))
	if err != nil || change != CredentialsKept || !bytes.Equal(kept.CertPEM, first.CertPEM) {
		t.Fatalf("an hour later: %v, %q, same=%v", err, change, bytes.Equal(kept.CertPEM, first.CertPEM))
	}
	if _, change, _ = EnsureCredentials(b.ClientCA, &first, tenant, 0, now.Add(61*24*time.Hour)); change != CredentialsRenewed {
		t.Errorf("after 61 of 90 days: %q", change)
	}
	other := Identity{User: tenant.User, Groups: []string{"team-a"}}
	if _, change, _ = EnsureCredentials(b.ClientCA, &first, other, 0, now); change != CredentialsIdentityChanged {
		t.Errorf("groups changed: %q", change)
	}
	if _, change, _ = EnsureCredentials(newBundle(t).ClientCA, &first, tenant, 0, now); change != CredentialsUnusable {
		t.Errorf("another CA: %q", change)
	}
	mixed := pki.KeyPair{CertPEM: first.CertPEM, KeyPEM: b.ClientCA.KeyPEM}
	if _, change, _ = EnsureCredentials(b.ClientCA, &mixed, tenant, 0, now); change != CredentialsUnusable {
		t.Errorf("key from another pair: %q", change)
	}
}

func buildKubeconfig(t *testing.T, b *pki.Bundle) []byte {
	t.Helper()
	kp, err := IssueCredentials(b.ClientCA, tenant, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Build(Config{ClusterName: "alpha", Server: "https://alpha.vc-alpha.svc:443", ServerCA: b.ServerCA.CertPEM, User: tenant.User, Credentials: kp})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestKubeconfigTrustsOnlyTheClusterCA(t *testing.T) {
	b := newBundle(t)
	out := buildKubeconfig(t, b)
	cfg, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters["alpha"]
	if cluster == nil || cluster.Server != "https://alpha.vc-alpha.svc:443" || !bytes.Equal(cluster.CertificateAuthorityData, b.ServerCA.CertPEM) {
		t.Fatalf("cluster entry %+v", cluster)
	}
	if cluster.InsecureSkipTLSVerify || bytes.Contains(out, []byte("insecure")) {
		t.Error("kubeconfig skips TLS verification")
	}
	if cfg.CurrentContext != "alpha" || cfg.Contexts["alpha"].AuthInfo != tenant.User {
		t.Errorf("context %q %+v", cfg.CurrentContext, cfg.Contexts["alpha"])
	}
	for _, bad := range []string{"http://alpha:80", "alpha:443", "https://"} {
		if _, err := Build(Config{ClusterName: "alpha", Server: bad, ServerCA: b.ServerCA.CertPEM, User: "u", Credentials: b.ClientCA}); err == nil {
			t.Errorf("server %q accepted", bad)
		}
	}
}

func TestSealedFileUnsealsOnlyAsItsTargetAndHidesEveryCredential(t *testing.T) {
	b := newBundle(t)
	plain := buildKubeconfig(t, b)
	priv, certPEM := sealingPair(t, time.Hour)
	key, err := ParseSealingCertificate(certPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hashKey := bytes.Repeat([]byte{7}, 32)
	res, err := Seal(SealRequest{Cluster: "alpha", Target: Target{Namespace: "team-a", Name: "alpha-kubeconfig"}, Kubeconfig: plain, SealingKey: key, HashKey: hashKey})
	if err != nil {
		t.Fatal(err)
	}
	if res.Change != NewFile {
		t.Errorf("change %q, want %q", res.Change, NewFile)
	}

	testkit.AssertNoPlaintext(t, res.File, plain)

	var sealed ssv1alpha1.SealedSecret
	if err := yaml.UnmarshalStrict(res.File, &sealed); err != nil {
		t.Fatalf("file is not a SealedSecret: %v\n%s", err, res.File)
	}
	if sealed.Scope() != ssv1alpha1.StrictScope || sealed.Namespace != "team-a" || sealed.Name != "alpha-kubeconfig" {
		t.Fatalf("scope %v, %s/%s", sealed.Scope(), sealed.Namespace, sealed.Name)
	}
	if sealed.Spec.Template.Labels[v1alpha1.KubeconfigOfLabel] != "alpha" || sealed.Labels[v1alpha1.KubeconfigOfLabel] != "alpha" || sealed.Labels["warren.dev/cluster"] != "" {
		t.Errorf("labels %v / template %v", sealed.Labels, sealed.Spec.Template.Labels)
	}
	fp, _ := sscrypto.PublicKeyFingerprint(&priv.PublicKey)
	keys := map[string]*rsa.PrivateKey{fp: priv}
	codecs := serializer.NewCodecFactory(scheme.Scheme)
	secret, err := sealed.Unseal(codecs, keys)
	if err != nil {
		t.Fatalf("the controller's key cannot unseal it: %v", err)
	}
	if !bytes.Equal(secret.Data[SecretKey], plain) {
		t.Error("unsealed kubeconfig differs from the plaintext")
	}
	moved := sealed.DeepCopy()
	moved.Namespace = "team-b"
	if _, err := moved.Unseal(codecs, keys); err == nil {
		t.Error("a strict SealedSecret unsealed in another namespace")
	}
	renamed := sealed.DeepCopy()
	renamed.Name = "stolen"
	if _, err := renamed.Unseal(codecs, keys); err == nil {
		t.Error("a strict SealedSecret unsealed under another name")
	}
}

func TestUnchangedKubeconfigKeepsTheFileByteForByte(t *testing.T) {
	b := newBundle(t)
	plain := buildKubeconfig(t, b)
	_, certPEM := sealingPair(t, time.Hour)
	key, err := ParseSealingCertificate(certPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hashKey := bytes.Repeat([]byte{1}, 32)
	target := Target{Namespace: "team-a", Name: "alpha-kubeconfig"}
	first, err := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: plain, SealingKey: key, HashKey: hashKey})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		again, err := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: plain, SealingKey: key, HashKey: hashKey, Previous: first.File})
		if err != nil {
			t.Fatal(err)
		}
		if again.Change != Unchanged || !bytes.Equal(again.File, first.File) {
			t.Fatalf("reconcile %d: change %q, same bytes %v", i, again.Change, bytes.Equal(again.File, first.File))
		}
	}

	renewed := buildKubeconfig(t, b) // new client certificate
	if res, _ := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: renewed, SealingKey: key, HashKey: hashKey, Previous: first.File}); res.Change != ContentChanged || bytes.Equal(res.File, first.File) {
		t.Errorf("new credentials: change %q", res.Change)
	}
	_, rotatedPEM := sealingPair(t, time.Hour)
	rotated, _ := ParseSealingCertificate(rotatedPEM, time.Now())
	if res, _ := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: plain, SealingKey: rotated, HashKey: hashKey, Previous: first.File}); res.Change != SealingKeyRotated {
		t.Errorf("rotated sealing key: change %q", res.Change)
	}
	if res, _ := Seal(SealRequest{Cluster: "alpha", Target: Target{Namespace: "team-b", Name: "alpha-kubeconfig"}, Kubeconfig: plain, SealingKey: key, HashKey: hashKey, Previous: first.File}); res.Change != TargetChanged {
		t.Errorf("moved target: change %q", res.Change)
	}
	if res, _ := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: plain, SealingKey: key, HashKey: bytes.Repeat([]byte{2}, 32), Previous: first.File}); res.Change != ContentChanged {
		t.Errorf("another hash key: change %q", res.Change)
	}
	if res, _ := Seal(SealRequest{Cluster: "alpha", Target: target, Kubeconfig: plain, SealingKey: key, HashKey: hashKey, Previous: []byte("not: [yaml")}); res.Change != Unreadable {
		t.Errorf("garbage in Git: change %q", res.Change)
	}
}

func TestNoSealingCertificateMeansNoFile(t *testing.T) {
	b := newBundle(t)
	plain := buildKubeconfig(t, b)
	if _, err := Seal(SealRequest{Target: Target{Namespace: "team-a", Name: "k"}, Kubeconfig: plain, HashKey: make([]byte, 32)}); err == nil {
		t.Fatal("sealed without a certificate")
	}
	_, expiredPEM := sealingPair(t, time.Hour)
	_, err := ParseSealingCertificate(expiredPEM, time.Now().Add(2*time.Hour))
	if !errors.Is(err, ErrSealingCertificateExpired) {
		t.Fatalf("expired certificate: %v", err)
	}
	if _, err := ParseSealingCertificate(b.ServerCA.CertPEM, time.Now()); err == nil {
		t.Fatal("an ECDSA certificate was accepted for sealing")
	}
	if _, err := ParseSealingCertificate(nil, time.Now()); err == nil {
		t.Fatal("an empty certificate was accepted")
	}
	key, err := ParseSealingCertificate(expiredPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Target{{Namespace: "", Name: "k"}, {Namespace: "Team_A", Name: "k"}, {Namespace: "team-a", Name: ""}} {
		if _, err := Seal(SealRequest{Target: bad, Kubeconfig: plain, SealingKey: key, HashKey: make([]byte, 32)}); err == nil {
			t.Errorf("target %+v accepted", bad)
		}
	}
}

func TestOnlyFilesOfRemovedClustersAreStale(t *testing.T) {
	files := []string{
		"kubeconfigs/alpha.yaml",
		"kubeconfigs/beta.yaml",
		"kubeconfigs/README.md",
		"kubeconfigs/kustomization.yaml",
		"kubeconfigs/nested/gamma.yaml",
		"clusters/beta.yaml",
	}
	got := StaleFiles("", files, map[string]bool{"alpha": true})
	if strings.Join(got, ",") != "kubeconfigs/beta.yaml" {
		t.Fatalf("stale %v", got)
	}
	if got := StaleFiles("out/kc", []string{"out/kc/a.yaml", "kubeconfigs/b.yaml"}, nil); strings.Join(got, ",") != "out/kc/a.yaml" {
		t.Fatalf("stale under a configured dir %v", got)
	}
}

func TestCommitMessageSaysWhatChangedAndWhy(t *testing.T) {
	if msg := CommitMessage([]Publication{{Cluster: "a", Change: Unchanged}}, nil); msg != "" {
		t.Fatalf("no change, message %q", msg)
	}
	one := CommitMessage([]Publication{{Cluster: "a", Path: "kubeconfigs/a.yaml", Change: NewFile, Credentials: CredentialsNew}}, nil)
	if !strings.HasPrefix(one, "kubeconfigs: a (kubeconfigs/a.yaml): new cluster\n") {
		t.Fatalf("message %q", one)
	}
	many := CommitMessage([]Publication{
		{Cluster: "a", Path: "kubeconfigs/a.yaml", Change: ContentChanged, Credentials: CredentialsRenewed},
		{Cluster: "b", Path: "kubeconfigs/b.yaml", Change: SealingKeyRotated},
	}, []string{"c"})
	for _, want := range []string{"update 3 cluster(s)", "a (kubeconfigs/a.yaml): renewal", "b (kubeconfigs/b.yaml): sealing key rotated", "c: cluster removed"} {
		if !strings.Contains(many, want) {
			t.Errorf("message lacks %q:\n%s", want, many)
		}
	}
}

func TestOneReconcileIsOneSetOfChanges(t *testing.T) {
	pubs := []Publication{
		{Cluster: "a", Path: "kubeconfigs/a.yaml", File: []byte("a"), Change: NewFile},
		{Cluster: "b", Path: "kubeconfigs/b.yaml", File: []byte("b"), Change: Unchanged},
	}
	ch := Collect(pubs, []string{"kubeconfigs/c.yaml"})
	if ch.Empty() || len(ch.Write) != 1 || string(ch.Write["kubeconfigs/a.yaml"]) != "a" || strings.Join(ch.Remove, ",") != "kubeconfigs/c.yaml" {
		t.Fatalf("changes %+v", ch)
	}
	for _, want := range []string{"a (kubeconfigs/a.yaml): new cluster", "c: cluster removed"} {
		if !strings.Contains(ch.Message, want) {
			t.Errorf("message lacks %q:\n%s", want, ch.Message)
		}
	}
	if quiet := Collect(pubs[1:], nil); !quiet.Empty() || quiet.Message != "" {
		t.Fatalf("nothing changed, yet %+v", quiet)
	}
}
