package kubeconfig

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/cert"
	"sigs.k8s.io/yaml"
)

const (
	// DefaultDir is where kubeconfig files live in the repository unless the
	// Fleet says otherwise.
	DefaultDir = "kubeconfigs"
	// SecretKey is the key of the unsealed Secret that holds the kubeconfig.
	SecretKey = "config"

	hashPrefix = "hmac-sha256:"
)

// FilePath is the repository path of a cluster's kubeconfig file under dir
// (DefaultDir when empty).
func FilePath(dir, cluster string) string {
	if dir == "" {
		dir = DefaultDir
	}
	return path.Join(dir, cluster+".yaml")
}

// SealingKey is the sealed-secrets controller's public certificate.
type SealingKey struct {
	Certificate *x509.Certificate
	PublicKey   *rsa.PublicKey
	// Fingerprint identifies the key (SHA256 of its SSH wire form, as
	// sealed-secrets prints it).
	Fingerprint string
}

// ErrSealingCertificateExpired is wrapped by every error about a sealing
// certificate outside its validity period.
var ErrSealingCertificateExpired = errors.New("sealing certificate is not valid now")

// clockSkew is how far a sealing certificate's start may lie in the future.
const clockSkew = 5 * time.Minute

// ParseSealingCertificate reads a PEM sealing certificate and checks that it
// holds an RSA key and is valid at now.
func ParseSealingCertificate(pemBytes []byte, now time.Time) (*SealingKey, error) {
	certs, err := cert.ParseCertsPEM(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("sealing certificate: %w", err)
	}
	c := certs[0]
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sealing certificate %q: holds a %T key, sealed-secrets needs RSA", c.Subject.CommonName, c.PublicKey)
	}
	if now.After(c.NotAfter) {
		return nil, fmt.Errorf("sealing certificate %q expired at %s: %w", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), ErrSealingCertificateExpired)
	}
	// A certificate the controller made a moment ago may start a fraction
	// of a second ahead of this clock (or another host's): allow for skew.
	if now.Add(clockSkew).Before(c.NotBefore) {
		return nil, fmt.Errorf("sealing certificate %q is valid only from %s: %w", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), ErrSealingCertificateExpired)
	}
	fp, err := sscrypto.PublicKeyFingerprint(pub)
	if err != nil {
		return nil, fmt.Errorf("sealing certificate: fingerprint: %w", err)
	}
	return &SealingKey{Certificate: c, PublicKey: pub, Fingerprint: fp}, nil
}

// Target is the Secret the sealed kubeconfig unseals into. Sealing is strict:
// the controller refuses to unseal it under any other namespace or name.
type Target struct {
	Namespace string
	Name      string
}

func (t Target) validate() error {
	if errs := validation.IsDNS1123Label(t.Namespace); len(errs) > 0 {
		return fmt.Errorf("kubeconfig target namespace %q: %s", t.Namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(t.Name); len(errs) > 0 {
		return fmt.Errorf("kubeconfig target name %q: %s", t.Name, errs[0])
	}
	return nil
}

// Change says why a kubeconfig file was (re)written.
type Change string

const (
	// Unchanged: the file in Git already holds this kubeconfig; keep its bytes.
	Unchanged Change = ""
	// NewFile: there was no file.
	NewFile Change = "new cluster"
	// SealingKeyRotated: the file was sealed with another public key.
	SealingKeyRotated Change = "sealing key rotated"
	// TargetChanged: the file unseals into another namespace or name.
	TargetChanged Change = "target changed"
	// ContentChanged: the kubeconfig itself differs (new credentials, server or CA).
	ContentChanged Change = "kubeconfig changed"
	// Unreadable: the file in Git is not a SealedSecret warren wrote.
	Unreadable Change = "existing file unreadable"
)

// SealRequest is one cluster's kubeconfig to publish.
type SealRequest struct {
	// Cluster is the virtual cluster's name (for labels).
	Cluster string
	// Target is where the Secret is unsealed.
	Target Target
	// Kubeconfig is the plaintext kubeconfig (from Build).
	Kubeconfig []byte
	// SealingKey is the host controller's public key.
	SealingKey *SealingKey
	// HashKey keys the hash that tells an unchanged kubeconfig (from the
	// host Secret, see EnsureHashKey).
	HashKey []byte
	// Previous is the file now in Git, nil if there is none.
	Previous []byte
}

// SealResult is the file to commit and why.
type SealResult struct {
	// File is the new file content; when Change is Unchanged it is Previous, byte for byte.
	File   []byte
	Change Change
}

// Seal decides whether the file in Git still holds req.Kubeconfig and, if
// not, seals it into a new SealedSecret file.
func Seal(req SealRequest) (SealResult, error) {
	if err := req.Target.validate(); err != nil {
		return SealResult{}, err
	}
	if req.SealingKey == nil || req.SealingKey.PublicKey == nil {
		return SealResult{}, errors.New("no sealing certificate: refusing to publish a kubeconfig unsealed")
	}
	if len(req.HashKey) < 32 {
		return SealResult{}, fmt.Errorf("kubeconfig hash key is %d bytes, need at least 32", len(req.HashKey))
	}
	if len(req.Kubeconfig) == 0 {
		return SealResult{}, errors.New("kubeconfig is empty")
	}
	sum := contentHash(req.HashKey, req.Target, req.Kubeconfig)
	change := compare(req.Previous, req.Target, req.SealingKey.Fingerprint, sum)
	if change == Unchanged {
		return SealResult{File: req.Previous, Change: Unchanged}, nil
	}
	file, err := seal(req, sum)
	if err != nil {
		return SealResult{}, err
	}
	return SealResult{File: file, Change: change}, nil
}

// contentHash keys the hash with the host's secret so the annotation cannot
// be used to test guesses of the plaintext.
func contentHash(key []byte, t Target, kubeconfig []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("warren kubeconfig v1\x00" + t.Namespace + "\x00" + t.Name + "\x00"))
	mac.Write(kubeconfig)
	return hashPrefix + hex.EncodeToString(mac.Sum(nil))
}

func compare(previous []byte, t Target, fingerprint, sum string) Change {
	if len(previous) == 0 {
		return NewFile
	}
	var prev ssv1alpha1.SealedSecret
	if err := yaml.UnmarshalStrict(previous, &prev); err != nil || prev.Kind != "SealedSecret" {
		return Unreadable
	}
	switch {
	case prev.Namespace != t.Namespace || prev.Name != t.Name:
		return TargetChanged
	case prev.Annotations[v1alpha1.SealingKeyAnnotation] != fingerprint:
		return SealingKeyRotated
	case !hmac.Equal([]byte(prev.Annotations[v1alpha1.KubeconfigHashAnnotation]), []byte(sum)):
		return ContentChanged
	}
	return Unchanged
}

func seal(req SealRequest, sum string) ([]byte, error) {
	labels := map[string]string{}
	if req.Cluster != "" {
		labels[v1alpha1.KubeconfigOfLabel] = req.Cluster
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Target.Namespace, Name: req.Target.Name, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{SecretKey: req.Kubeconfig},
	}
	// No scope annotations on the Secret: sealed-secrets' default, strict
	// scope, binds the ciphertext to this namespace and name.
	sealed, err := ssv1alpha1.NewSealedSecret(serializer.NewCodecFactory(scheme.Scheme), req.SealingKey.PublicKey, secret)
	if err != nil {
		return nil, fmt.Errorf("sealing kubeconfig for %s/%s: %w", req.Target.Namespace, req.Target.Name, err)
	}
	if sealed.Scope() != ssv1alpha1.StrictScope {
		return nil, fmt.Errorf("sealing kubeconfig for %s/%s: scope is %v, want strict", req.Target.Namespace, req.Target.Name, sealed.Scope())
	}
	sealed.TypeMeta = metav1.TypeMeta{APIVersion: ssv1alpha1.SchemeGroupVersion.String(), Kind: "SealedSecret"}
	sealed.Labels = labels
	sealed.Annotations[v1alpha1.KubeconfigHashAnnotation] = sum
	sealed.Annotations[v1alpha1.SealingKeyAnnotation] = req.SealingKey.Fingerprint

	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sealed)
	if err != nil {
		return nil, fmt.Errorf("encoding SealedSecret %s/%s: %w", req.Target.Namespace, req.Target.Name, err)
	}
	// Empty timestamps are noise in a file people read in pull requests.
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj, "spec", "template", "metadata", "creationTimestamp")
	out, err := yaml.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding SealedSecret %s/%s: %w", req.Target.Namespace, req.Target.Name, err)
	}
	return append([]byte("# Sealed by warren: only the sealed-secrets controller that holds the matching\n# private key can open it, and only as this Secret's namespace and name.\n"), out...), nil
}
