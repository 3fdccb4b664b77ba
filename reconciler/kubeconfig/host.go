package kubeconfig

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
)

// maxCertificateBytes bounds what is read from a controller or object when
// fetching a sealing certificate.
const maxCertificateBytes = 64 << 10

// CertificateSource says where the sealing certificate comes from. Exactly
// one of Controller, Secret and ConfigMap is set.
type CertificateSource struct {
	// Controller fetches the certificate from the sealed-secrets
	// controller's HTTP endpoint through the API server's service proxy,
	// as kubeseal does.
	Controller *ControllerRef
	// Secret reads the certificate from a key of a Secret.
	Secret *ObjectKeyRef
	// ConfigMap reads the certificate from a key of a ConfigMap.
	ConfigMap *ObjectKeyRef
}

// ControllerRef locates the sealed-secrets controller's Service.
type ControllerRef struct {
	Namespace string
	Service   string
	// Port is the Service port's name or number; the Service's first port when empty.
	Port string
	// Path is the certificate's path; /v1/cert.pem when empty.
	Path string
}

// ObjectKeyRef names one key of a namespaced object.
type ObjectKeyRef struct {
	Namespace string
	Name      string
	// Key defaults to "cert.pem".
	Key string
}

// ErrNoSealingCertificate is wrapped by every error about a sealing
// certificate that could not be found or read.
var ErrNoSealingCertificate = errors.New("no sealing certificate")

// FetchSealingKey reads the sealing certificate from src and checks it is
// valid at now. Errors wrap ErrNoSealingCertificate or
// ErrSealingCertificateExpired so a caller can set a condition; there is
// no fallback.
func FetchSealingKey(ctx context.Context, client kubernetes.Interface, src CertificateSource, now time.Time) (*SealingKey, error) {
	set := 0
	for _, ok := range []bool{src.Controller != nil, src.Secret != nil, src.ConfigMap != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("sealing certificate source: set exactly one of controller, secret and configMap (%d set): %w", set, ErrNoSealingCertificate)
	}
	var (
		pemBytes []byte
		where    string
		err      error
	)
	switch {
	case src.Controller != nil:
		where = fmt.Sprintf("sealed-secrets controller service %s/%s", src.Controller.Namespace, src.Controller.Service)
		pemBytes, err = fetchFromController(ctx, client, *src.Controller)
	case src.Secret != nil:
		ref := withDefaultKey(*src.Secret)
		where = fmt.Sprintf("Secret %s/%s key %q", ref.Namespace, ref.Name, ref.Key)
		var s *corev1.Secret
		if s, err = client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			pemBytes = s.Data[ref.Key]
		}
	case src.ConfigMap != nil:
		ref := withDefaultKey(*src.ConfigMap)
		where = fmt.Sprintf("ConfigMap %s/%s key %q", ref.Namespace, ref.Name, ref.Key)
		var cm *corev1.ConfigMap
		if cm, err = client.CoreV1().ConfigMaps(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{}); err == nil {
			pemBytes = []byte(cm.Data[ref.Key])
			if len(pemBytes) == 0 {
				pemBytes = cm.BinaryData[ref.Key]
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the sealing certificate from %s: %w (%w)", where, ErrNoSealingCertificate, err)
	}
	if len(bytes.TrimSpace(pemBytes)) == 0 {
		return nil, fmt.Errorf("%s holds no certificate: %w", where, ErrNoSealingCertificate)
	}
	key, err := ParseSealingCertificate(pemBytes, now)
	if err != nil {
		if errors.Is(err, ErrSealingCertificateExpired) {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return nil, fmt.Errorf("%s: %w (%w)", where, ErrNoSealingCertificate, err)
	}
	return key, nil
}

func withDefaultKey(ref ObjectKeyRef) ObjectKeyRef {
	if ref.Key == "" {
		ref.Key = "cert.pem"
	}
	return ref
}

func fetchFromController(ctx context.Context, client kubernetes.Interface, ref ControllerRef) ([]byte, error) {
	svc, err := client.CoreV1().Services(ref.Namespace).Get(ctx, ref.Service, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if len(svc.Spec.Ports) == 0 {
		return nil, fmt.Errorf("service %s/%s has no ports", ref.Namespace, ref.Service)
	}
	port := ref.Port
	if port == "" {
		p := svc.Spec.Ports[0]
		port = p.Name
		if port == "" {
			port = strconv.Itoa(int(p.Port))
		}
	}
	p := ref.Path
	if p == "" {
		p = "/v1/cert.pem"
	}
	stream, err := client.CoreV1().Services(ref.Namespace).ProxyGet("http", ref.Service, port, p, nil).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	body, err := io.ReadAll(io.LimitReader(stream, maxCertificateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxCertificateBytes {
		return nil, fmt.Errorf("response is larger than %d bytes", maxCertificateBytes)
	}
	return body, nil
}

// hashKeyKey is the data key of the hash-key Secret.
const hashKeyKey = "hmac-key"

// EnsureHashKey returns the key that hashes kubeconfigs, from the host Secret
// namespace/name, creating the Secret with a random key if it is missing. An
// existing Secret warren did not create is never adopted or overwritten.
func EnsureHashKey(ctx context.Context, client kubernetes.Interface, namespace, name string) ([]byte, error) {
	secrets := client.CoreV1().Secrets(namespace)
	for range 2 {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return hashKeyFrom(s)
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading kubeconfig hash key Secret %s/%s: %w", namespace, name, err)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generating kubeconfig hash key: %w", err)
		}
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{hashKeyKey: key},
		}, metav1.CreateOptions{FieldManager: v1alpha1.ManagedByValue})
		if err == nil {
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating kubeconfig hash key Secret %s/%s: %w", namespace, name, err)
		}
		// Someone created it meanwhile: read theirs.
	}
	return nil, fmt.Errorf("kubeconfig hash key Secret %s/%s: created and deleted concurrently", namespace, name)
}

func hashKeyFrom(s *corev1.Secret) ([]byte, error) {
	if s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		return nil, fmt.Errorf("Secret %s/%s exists but was not created by warren (no %s=%s label): not using it as the kubeconfig hash key", s.Namespace, s.Name, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)
	}
	key := s.Data[hashKeyKey]
	if len(key) < 32 {
		return nil, fmt.Errorf("Secret %s/%s: key %q holds %d bytes, need at least 32", s.Namespace, s.Name, hashKeyKey, len(key))
	}
	return key, nil
}

// LoadCredentials reads the tenant credentials kept in the host Secret
// namespace/name; nil, nil when it does not exist.
func LoadCredentials(ctx context.Context, client kubernetes.Interface, namespace, name string) (*pki.KeyPair, error) {
	s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading tenant credentials Secret %s/%s: %w", namespace, name, err)
	}
	if s.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		return nil, fmt.Errorf("Secret %s/%s exists but was not created by warren (no %s=%s label): not using it for tenant credentials", namespace, name, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)
	}
	return &pki.KeyPair{CertPEM: s.Data[corev1.TLSCertKey], KeyPEM: s.Data[corev1.TLSPrivateKeyKey]}, nil
}

// StoreCredentials writes the tenant credentials into the host Secret
// namespace/name (type kubernetes.io/tls), creating it or updating one
// warren created. labels and owners are set on it.
func StoreCredentials(ctx context.Context, client kubernetes.Interface, namespace, name string, labels map[string]string, owners []metav1.OwnerReference, kp pki.KeyPair) error {
	all := map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}
	for k, v := range labels {
		all[k] = v
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: all, OwnerReferences: owners},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: kp.CertPEM, corev1.TLSPrivateKeyKey: kp.KeyPEM},
	}
	secrets := client.CoreV1().Secrets(namespace)
	cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{FieldManager: v1alpha1.ManagedByValue}); err != nil {
			return fmt.Errorf("creating tenant credentials Secret %s/%s: %w", namespace, name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading tenant credentials Secret %s/%s: %w", namespace, name, err)
	}
	if cur.Labels[v1alpha1.ManagedByLabel] != v1alpha1.ManagedByValue {
		return fmt.Errorf("Secret %s/%s exists but was not created by warren (no %s=%s label): not overwriting it", namespace, name, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)
	}
	if cur.Type != corev1.SecretTypeTLS {
		return fmt.Errorf("Secret %s/%s has type %s, want %s: delete it to let warren recreate it", namespace, name, cur.Type, corev1.SecretTypeTLS)
	}
	cur.Labels = all
	if owners != nil {
		cur.OwnerReferences = owners
	}
	cur.Data = want.Data
	if _, err := secrets.Update(ctx, cur, metav1.UpdateOptions{FieldManager: v1alpha1.ManagedByValue}); err != nil {
		return fmt.Errorf("updating tenant credentials Secret %s/%s: %w", namespace, name, err)
	}
	return nil
}
