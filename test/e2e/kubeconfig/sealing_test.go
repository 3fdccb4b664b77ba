package kubeconfige2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	sscrypto "github.com/bitnami-labs/sealed-secrets/pkg/crypto"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/sealedsecrets"
)

// The story: cluster "alpha" belongs to tenant team-a, whose policy grants
// the group team-a the `edit` role in namespace apps inside the cluster, and
// lets its kubeconfig be unsealed as Secret alpha-kubeconfig in the host
// namespace team-a.
func TestTenantKubeconfigIsSealedUnsealedOnTheHostAndGrantsExactlyTheAccessBindings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two control planes and the sealed-secrets controller")
	}
	t.Parallel() // each story runs on planes of its own
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	host := localkube.ForTest(t, localkube.Options{})
	controller := sealedsecrets.ForTest(t, host, sealedsecrets.Options{})
	hostClient := kubernetes.NewForConfigOrDie(host.Config)
	for _, ns := range []string{"warren-system", "vc-alpha", "team-a", "team-b"} {
		mustCreate(t, func() error {
			_, err := hostClient.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}

	// The cluster's PKI, as the reconciler keeps it; a plane started from it
	// stands in for the virtual cluster's k3s.
	bundle, err := pki.Generate("alpha")
	if err != nil {
		t.Fatal(err)
	}
	// With a controller-manager, as k3s has: it fills the aggregated
	// ClusterRoles (edit, view, admin) that access grants refer to.
	virtual := localkube.ForTest(t, localkube.Options{PKI: bundle, ControllerManager: true})
	grantAccess(ctx, t, virtual, "apps", "edit", "team-a")

	// Each reconcile: fetch the sealing key and hash key, publish the cluster
	// given the file now in Git.
	id := kubeconfig.Identity{User: "tenant:team-a", Groups: []string{"team-a"}}
	cluster := kubeconfig.Cluster{
		Name:          "alpha",
		HostNamespace: "vc-alpha",
		PKI:           bundle,
		Identity:      id,
		Server:        virtual.Config.Host,
		Target:        kubeconfig.Target{Namespace: "team-a", Name: "alpha-kubeconfig"},
		Labels:        map[string]string{"warren.dev/cluster": "alpha"},
	}
	clock := time.Now()
	publisher := &kubeconfig.Publisher{Client: hostClient, Now: func() time.Time { return clock }}
	publish := func(previous []byte) kubeconfig.Publication {
		t.Helper()
		key, err := kubeconfig.FetchSealingKey(ctx, hostClient, kubeconfig.CertificateSource{Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: controller.ServiceName}}, clock)
		if err != nil {
			t.Fatalf("fetching the sealing certificate through the service proxy: %v", err)
		}
		hashKey, err := kubeconfig.EnsureHashKey(ctx, hostClient, "warren-system", "warren-kubeconfig-hash")
		if err != nil {
			t.Fatal(err)
		}
		publisher.SealingKey, publisher.HashKey = key, hashKey
		out, err := publisher.Publish(ctx, "", cluster, previous)
		if err != nil {
			t.Fatal(err)
		}
		if out.Path != "kubeconfigs/alpha.yaml" {
			t.Fatalf("path %q", out.Path)
		}
		creds, err := kubeconfig.LoadCredentials(ctx, hostClient, "vc-alpha", kubeconfig.CredentialsSecretName("alpha"))
		if err != nil || creds == nil {
			t.Fatalf("credentials not kept on the host: %v", err)
		}
		plain, err := kubeconfig.Build(kubeconfig.Config{ClusterName: "alpha", Server: cluster.Server, ServerCA: bundle.ServerCA.CertPEM, User: id.User, Credentials: *creds})
		if err != nil {
			t.Fatal(err)
		}
		testkit.AssertNoPlaintext(t, out.File, plain)
		return out
	}

	first := publish(nil)
	if first.Change != kubeconfig.NewFile || first.Credentials != kubeconfig.CredentialsNew || first.Reason() != "new cluster" {
		t.Fatalf("first publish: %q, %q", first.Change, first.Credentials)
	}
	for i := range 10 {
		again := publish(first.File)
		if again.Change != kubeconfig.Unchanged || !bytes.Equal(again.File, first.File) {
			t.Fatalf("reconcile %d with nothing changed: change %q, same bytes %v", i, again.Change, bytes.Equal(again.File, first.File))
		}
	}
	if msg := kubeconfig.CommitMessage([]kubeconfig.Publication{publish(first.File)}, nil); msg != "" {
		t.Fatalf("nothing changed, yet a commit message: %q", msg)
	}

	// Applying the file to the host, as Flux or Argo CD would.
	applyFile(ctx, t, host, first.File, "")
	unsealed := waitForSecret(ctx, t, hostClient, controller, "team-a", "alpha-kubeconfig")
	if unsealed.Labels[v1alpha1.KubeconfigOfLabel] != "alpha" {
		t.Errorf("unsealed Secret labels %v", unsealed.Labels)
	}

	// The same file moved to another namespace is refused by the controller.
	applyFile(ctx, t, host, first.File, "team-b")
	waitForUnsealError(ctx, t, host, "team-b", "alpha-kubeconfig")
	if _, err := hostClient.CoreV1().Secrets("team-b").Get(ctx, "alpha-kubeconfig", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a strict SealedSecret was unsealed in another namespace: %v", err)
	}

	// The tenant uses the kubeconfig against the cluster.
	cfg, err := clientcmd.RESTConfigFromKubeConfig(unsealed.Data[kubeconfig.SecretKey])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Insecure {
		t.Fatal("kubeconfig skips TLS verification")
	}
	tenantClient := kubernetes.NewForConfigOrDie(cfg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "b"}}
	if _, err := tenantClient.CoreV1().ConfigMaps("apps").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("edit in apps should allow creating a ConfigMap: %v", err)
	}
	if _, err := tenantClient.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("edit in apps should allow listing pods: %v", err)
	}
	for what, call := range map[string]func() error{
		"list pods in kube-system": func() error {
			_, err := tenantClient.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
			return err
		},
		"create a namespace": func() error {
			_, err := tenantClient.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{})
			return err
		},
		"list nodes": func() error {
			_, err := tenantClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		},
		"grant itself a role in apps": func() error {
			_, err := tenantClient.RbacV1().RoleBindings("apps").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "escalate"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "team-a"}},
			}, metav1.CreateOptions{})
			return err
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: want Forbidden, got %v", what, err)
		}
	}

	// Two thirds into the certificate's life, the next reconcile renews it.
	clock = clock.Add(61 * 24 * time.Hour)
	renewed := publish(first.File)
	if renewed.Change != kubeconfig.ContentChanged || renewed.Credentials != kubeconfig.CredentialsRenewed || renewed.Reason() != "renewal" {
		t.Fatalf("after 61 days: change %q, credentials %q", renewed.Change, renewed.Credentials)
	}
	// The new certificate was issued on the real clock; back on it, the
	// renewed file stays as it is.
	clock = time.Now()
	if again := publish(renewed.File); again.Change != kubeconfig.Unchanged {
		t.Fatalf("right after renewal: change %q", again.Change)
	}
	// The host's sealing key is rotated: the next reconcile reseals, and the
	// controller unseals the new file into the same Secret.
	if _, err := controller.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	resealed := publish(renewed.File)
	if resealed.Change != kubeconfig.SealingKeyRotated || resealed.Reason() != "sealing key rotated" {
		t.Fatalf("after key rotation: change %q", resealed.Change)
	}
	applyFile(ctx, t, host, resealed.File, "")
	current, err := kubeconfig.LoadCredentials(ctx, hostClient, "vc-alpha", kubeconfig.CredentialsSecretName("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := kubeconfig.Build(kubeconfig.Config{ClusterName: "alpha", Server: cluster.Server, ServerCA: bundle.ServerCA.CertPEM, User: id.User, Credentials: *current})
	if err != nil {
		t.Fatal(err)
	}
	for {
		s, err := hostClient.CoreV1().Secrets("team-a").Get(ctx, "alpha-kubeconfig", metav1.GetOptions{})
		if err == nil && bytes.Equal(s.Data[kubeconfig.SecretKey], want) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not unseal the resealed file; its log is %s", controller.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}

	msg := kubeconfig.CommitMessage([]kubeconfig.Publication{renewed}, []string{"beta"})
	for _, want := range []string{"alpha (kubeconfigs/alpha.yaml): renewal", "beta: cluster removed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
}

func TestSealingCertificateSourcesFailClearlyAndNeverFallBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and the sealed-secrets controller")
	}
	t.Parallel() // each story runs on planes of its own
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	host := localkube.ForTest(t, localkube.Options{})
	controller := sealedsecrets.ForTest(t, host, sealedsecrets.Options{KeyTTL: time.Hour})
	client := kubernetes.NewForConfigOrDie(host.Config)
	certPEM, err := controller.CertificatePEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, func() error {
		_, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "sealing-cert"}, Data: map[string]string{"cert.pem": string(certPEM)},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := client.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "sealing-cert"}, Data: map[string][]byte{"tls.crt": certPEM},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "expired-cert"}, Data: map[string]string{"cert.pem": string(expiredSealingCert(t))},
		}, metav1.CreateOptions{})
		return err
	})

	now := time.Now()
	fromProxy, err := kubeconfig.FetchSealingKey(ctx, client, kubeconfig.CertificateSource{Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: controller.ServiceName}}, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]kubeconfig.CertificateSource{
		"configmap":    {ConfigMap: &kubeconfig.ObjectKeyRef{Namespace: "default", Name: "sealing-cert"}},
		"secret":       {Secret: &kubeconfig.ObjectKeyRef{Namespace: "default", Name: "sealing-cert", Key: "tls.crt"}},
		"service port": {Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: controller.ServiceName, Port: "8080"}},
	} {
		key, err := kubeconfig.FetchSealingKey(ctx, client, src, now)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if key.Fingerprint != fromProxy.Fingerprint {
			t.Errorf("%s: another key than the controller's", name)
		}
	}

	for name, tc := range map[string]struct {
		src  kubeconfig.CertificateSource
		want error
	}{
		"no such service":   {kubeconfig.CertificateSource{Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: "nope"}}, kubeconfig.ErrNoSealingCertificate},
		"no such secret":    {kubeconfig.CertificateSource{Secret: &kubeconfig.ObjectKeyRef{Namespace: "default", Name: "nope"}}, kubeconfig.ErrNoSealingCertificate},
		"no such key":       {kubeconfig.CertificateSource{ConfigMap: &kubeconfig.ObjectKeyRef{Namespace: "default", Name: "sealing-cert", Key: "other"}}, kubeconfig.ErrNoSealingCertificate},
		"expired":           {kubeconfig.CertificateSource{ConfigMap: &kubeconfig.ObjectKeyRef{Namespace: "default", Name: "expired-cert"}}, kubeconfig.ErrSealingCertificateExpired},
		"no source":         {kubeconfig.CertificateSource{}, kubeconfig.ErrNoSealingCertificate},
		"two sources":       {kubeconfig.CertificateSource{Secret: &kubeconfig.ObjectKeyRef{Name: "a"}, ConfigMap: &kubeconfig.ObjectKeyRef{Name: "b"}}, kubeconfig.ErrNoSealingCertificate},
		"wrong path served": {kubeconfig.CertificateSource{Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: controller.ServiceName, Path: "/healthz"}}, kubeconfig.ErrNoSealingCertificate},
	} {
		key, err := kubeconfig.FetchSealingKey(ctx, client, tc.src, now)
		if !errors.Is(err, tc.want) || key != nil {
			t.Errorf("%s: got %v, want an error wrapping %q", name, err, tc.want)
		}
	}

	// Two hours on, the controller's one-hour certificate has expired: a
	// clear error, no key to seal with.
	if key, err := kubeconfig.FetchSealingKey(ctx, client, kubeconfig.CertificateSource{Controller: &kubeconfig.ControllerRef{Namespace: controller.Namespace, Service: controller.ServiceName}}, now.Add(2*time.Hour)); !errors.Is(err, kubeconfig.ErrSealingCertificateExpired) || key != nil || !kubeconfig.IsSealingUnavailable(err) {
		t.Errorf("expired controller certificate: %v", err)
	}

	// The hash key: created once, then the same; a foreign Secret is never adopted.
	k1, err := kubeconfig.EnsureHashKey(ctx, client, "default", "warren-kubeconfig-hash")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := kubeconfig.EnsureHashKey(ctx, client, "default", "warren-kubeconfig-hash")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second call: %v, same key %v", err, bytes.Equal(k1, k2))
	}
	if _, err := kubeconfig.EnsureHashKey(ctx, client, "default", "sealing-cert"); err == nil {
		t.Fatal("a Secret warren did not create was used as the hash key")
	}
	if err := kubeconfig.StoreCredentials(ctx, client, "default", "sealing-cert", nil, nil, pki.KeyPair{CertPEM: []byte("x"), KeyPEM: []byte("y")}); err == nil {
		t.Fatal("a Secret warren did not create was overwritten with credentials")
	}
	if s, _ := client.CoreV1().Secrets("default").Get(ctx, "sealing-cert", metav1.GetOptions{}); !bytes.Equal(s.Data["tls.crt"], certPEM) {
		t.Fatal("the foreign Secret changed")
	}
}

func expiredSealingCert(t *testing.T) []byte {
	t.Helper()
	key, _, err := sscrypto.GeneratePrivateKeyAndCert(2048, time.Hour, "old")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sscrypto.SignKeyWithNotBefore(rand.Reader, key, time.Now().Add(-48*time.Hour), 24*time.Hour, "old")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

// grantAccess binds group to a cluster role in namespace, inside the
// virtual cluster, as a policy's `access` grant renders.
func grantAccess(ctx context.Context, t *testing.T, plane *localkube.Plane, namespace, role, group string) {
	t.Helper()
	c := kubernetes.NewForConfigOrDie(plane.Config)
	for {
		cr, err := c.RbacV1().ClusterRoles().Get(ctx, role, metav1.GetOptions{})
		if err == nil && len(cr.Rules) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ClusterRole %s has no rules yet (aggregation did not run)", role)
		case <-time.After(100 * time.Millisecond):
		}
	}
	mustCreate(t, func() error {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := c.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "warren-access-" + group},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: group}},
		}, metav1.CreateOptions{})
		return err
	})
}

// applyFile server-side applies a kubeconfig file to the host, optionally
// into another namespace than the one it names.
func applyFile(ctx context.Context, t *testing.T, plane *localkube.Plane, file []byte, namespace string) {
	t.Helper()
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(file, &obj.Object); err != nil {
		t.Fatalf("the file is not YAML: %v", err)
	}
	if namespace != "" {
		obj.SetNamespace(namespace)
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	_, err = dynamic.NewForConfigOrDie(plane.Config).Resource(sealedSecretsGVR).Namespace(obj.GetNamespace()).
		Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "gitops", Force: &force})
	if err != nil {
		t.Fatalf("applying the kubeconfig file: %v", err)
	}
}

func waitForSecret(ctx context.Context, t *testing.T, c kubernetes.Interface, controller *sealedsecrets.Controller, namespace, name string) *corev1.Secret {
	t.Helper()
	for {
		s, err := c.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return s
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not unseal %s/%s; its log is %s", namespace, name, controller.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitForUnsealError waits until the controller reports on the SealedSecret
// that it could not unseal it.
func waitForUnsealError(ctx context.Context, t *testing.T, plane *localkube.Plane, namespace, name string) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(plane.Config).Resource(sealedSecretsGVR).Namespace(namespace)
	for {
		obj, err := dyn.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Synced" && m["status"] == "False" {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not report %s/%s as failing to unseal", namespace, name)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
