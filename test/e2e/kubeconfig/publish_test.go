// Package kubeconfige2e tells, end to end, the story that closes warren's
// pull-request loop: a tenant merges a cluster definition and finds, a
// moment later, a sealed kubeconfig for it in the same repository, which
// only the host's sealed-secrets controller can open, only as the Secret the
// tenant's policy allowed, and which grants exactly the cluster's `access`.
//
// Everything is real: a local host plane (pods simulated by kwok fake nodes:
// there is no container runtime here), the sealed-secrets controller built
// from its own module and run as a local process, a Git server speaking
// smart HTTP over TLS through `git http-backend` with pushes enabled (behind
// a small proxy that lets the story act at the moment warren pushes), and warren's
// reconciler (controller.Run, in this process).
package kubeconfige2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/go-logr/logr/funcr"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/reconcilertest"
	"github.com/warren-dev/warren/test/sealedsecrets"
	"github.com/warren-dev/warren/test/testkit"
)

var sealedSecretsGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}

// story holds the running pieces.
type story struct {
	t      *testing.T
	ctx    context.Context
	host   *localkube.Plane
	admin  client.Client
	kube   kubernetes.Interface
	repo   *gitserver.Repo
	proxy  *gitProxy
	fleet  client.ObjectKey
	logs   *syncBuffer
	sealed *sealedsecrets.Controller
}

func TestTenantFindsASealedKubeconfigInGitAfterMergingItsCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two control planes, the sealed-secrets controller and a Git server")
	}
	t.Parallel() // each story runs on planes of its own
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := setUp(t, ctx)

	// 1. alpha becomes Ready: within one reconcile a commit adds its file.
	s.waitFor("alpha Ready and its kubeconfig published", func() bool {
		vc := s.cluster("alpha")
		return vc != nil && conditions.IsReady(vc) && conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition)
	})
	head := s.repo.Head(t, "main")
	vc := s.cluster("alpha")
	if vc.Status.Kubeconfig == nil || vc.Status.Kubeconfig.Commit != head || vc.Status.Kubeconfig.Path != "kubeconfigs/alpha.yaml" {
		t.Fatalf("VirtualCluster status.kubeconfig %+v, want kubeconfigs/alpha.yaml at %s", vc.Status.Kubeconfig, head)
	}
	if got := vc.Status.HostObjects.TenantKubeconfigSecret; got != "team-a/alpha-kubeconfig" {
		t.Fatalf("status.hostObjects.tenantKubeconfigSecret %q", got)
	}
	if msg := conditions.GetMessage(vc, v1alpha1.KubeconfigPublishedCondition); !strings.Contains(msg, head) {
		t.Fatalf("KubeconfigPublished does not name the commit %s: %q", head, msg)
	}
	s.assertWarrenCommit(head, "alpha (kubeconfigs/alpha.yaml): new cluster")
	if n := s.countWarrenCommits(); n != 1 {
		t.Fatalf("%d commits by warren, want exactly one for one Ready cluster", n)
	}
	s.fsck()
	file := []byte(s.repo.Show(t, head, "kubeconfigs/alpha.yaml"))

	// The reconciler's own commit is a new revision of the Fleet: applying
	// it renders nothing new and writes no host object.
	writesBefore := writeRequests(t, s.host, renderedResources...)
	if writesBefore == 0 {
		t.Fatal("the API server counted no writes at all; the comparison below would prove nothing")
	}
	alphaObjects := s.resourceVersions("alpha")
	s.requestReconcile("after-warren-commit")
	s.waitFor("the Fleet to apply warren's own commit", func() bool {
		f := s.getFleet()
		return f.Status.LastAppliedRevision == "main@sha1:"+head && conditions.IsReady(f)
	})
	if w := writeRequests(t, s.host, renderedResources...) - writesBefore; w != 0 {
		t.Errorf("applying a revision that only changed kubeconfigs/ made %v write request(s) to host objects", w)
	}
	if after := s.resourceVersions("alpha"); !equalMaps(alphaObjects, after) {
		t.Errorf("alpha's host objects changed after a kubeconfigs-only revision:\nbefore %v\nafter  %v", alphaObjects, after)
	}

	// 3. Ten more reconciles with nothing changed: no new commit.
	for i := range 10 {
		s.requestReconcile(fmt.Sprintf("quiet-%d", i))
	}
	if got := s.repo.Head(t, "main"); got != head {
		t.Fatalf("reconciles with nothing changed moved main from %s to %s:\n%s", head, got, s.git("log", "--format=%H %an: %s", head+".."+got))
	}

	// 2. The file applied to the host unseals into the allowed namespace,
	// and the kubeconfig grants exactly `access` in a plane started from
	// the cluster's PKI.
	s.tenantUsesTheKubeconfig(file)

	// The host's sealing key is rotated: the next reconcile reseals alpha's
	// file in one commit that says why.
	if _, err := s.sealed.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	s.requestReconcile("rotated")
	rotated := s.repo.Head(t, "main")
	if rotated == head {
		t.Fatal("a rotated sealing key made no commit")
	}
	s.assertWarrenCommit(rotated, "alpha (kubeconfigs/alpha.yaml): sealing key rotated")
	file = []byte(s.repo.Show(t, rotated, "kubeconfigs/alpha.yaml"))

	// 4. beta is merged; while warren publishes it, someone pushes an
	// unrelated commit. warren's push still lands on top, without force.
	s.repo.Pull(t)
	s.repo.CommitFiles(t, "add cluster beta", map[string]string{"clusters/beta.yaml": fleettest.KubeconfigCluster("beta")})
	merged := s.repo.Head(t, "main")
	var unrelated atomic.Value
	s.proxy.beforeReceivePack(func() {
		sha, err := s.pushUnrelated()
		if err != nil {
			t.Errorf("pushing the unrelated commit: %v", err)
		}
		unrelated.Store(sha)
	})
	s.requestReconcile("beta")
	s.waitFor("beta's kubeconfig published", func() bool {
		vc := s.cluster("beta")
		return vc != nil && conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition)
	})
	betaCommit := s.cluster("beta").Status.Kubeconfig.Commit
	other, _ := unrelated.Load().(string)
	if other == "" {
		t.Fatal("the unrelated commit was never pushed: warren did not push through the proxy")
	}
	if parent := s.git("rev-parse", betaCommit+"^"); parent != other {
		t.Fatalf("warren's commit %s has parent %s, want the unrelated commit %s on top of %s", betaCommit, parent, other, merged)
	}
	if got := s.repo.Show(t, betaCommit, "docs/notes.md"); got != "meeting notes" {
		t.Fatalf("the unrelated commit's file is gone at warren's commit: %q", got)
	}
	if s.repo.Show(t, betaCommit, "kubeconfigs/alpha.yaml") != string(file) {
		t.Fatal("publishing beta rewrote alpha's unchanged file")
	}
	s.assertWarrenCommit(betaCommit, "beta (kubeconfigs/beta.yaml): new cluster")
	if n := s.proxy.receivePackAdverts.Load(); n < 2 {
		t.Fatalf("warren asked to push %d time(s); the moved branch should have made it fetch and push again", n)
	}
	s.fsck()

	// 5. beta is removed from Git: its file is removed in a commit. The
	// branch is protected at first: warren's push is refused, the Fleet
	// says so with the remote's message, and retries until it lands.
	hook := filepath.Join(s.repo.BareDir, "hooks", "pre-receive")
	protect := "#!/bin/sh\n# Only pushes over HTTP (warren's) are refused.\nif [ -n \"$GIT_HTTP_EXPORT_ALL\" ]; then echo 'main is protected: ask the platform team' >&2; exit 1; fi\n"
	if err := os.WriteFile(hook, []byte(protect), 0o755); err != nil {
		t.Fatal(err)
	}
	s.repo.Pull(t)
	s.repo.RemoveFiles(t, "remove cluster beta", "clusters/beta.yaml")
	s.requestReconcile("remove-beta")
	s.waitFor("the refused push reported on the Fleet", func() bool {
		f := s.getFleet()
		st := f.Status.Kubeconfigs
		return conditions.IsFalse(f, v1alpha1.KubeconfigsPublishedCondition) &&
			conditions.GetReason(f, v1alpha1.KubeconfigsPublishedCondition) == v1alpha1.PushFailedReason &&
			st != nil && len(st.PendingPushes) == 1 && st.PendingPushes[0] == "kubeconfigs/beta.yaml (delete)"
	})
	f := s.getFleet()
	t.Logf("refused push: %s", conditions.GetMessage(f, v1alpha1.KubeconfigsPublishedCondition))
	if !strings.Contains(f.Status.Kubeconfigs.LastPushError, "main is protected: ask the platform team") {
		t.Errorf("the Fleet does not carry the remote's message: %q", f.Status.Kubeconfigs.LastPushError)
	}
	if err := os.Remove(hook); err != nil {
		t.Fatal(err)
	}
	s.waitFor("beta's kubeconfig removed from Git", func() bool {
		_, err := testkit.RunGit(ctx, s.repo.BareDir, "cat-file", "-e", "main:kubeconfigs/beta.yaml")
		return err != nil && s.cluster("beta") == nil
	})
	removal := s.repo.Head(t, "main")
	s.assertWarrenCommit(removal, "beta: cluster removed")
	s.waitFor("the Fleet to report the push landed", func() bool {
		f := s.getFleet()
		return conditions.IsTrue(f, v1alpha1.KubeconfigsPublishedCondition) && len(f.Status.Kubeconfigs.PendingPushes) == 0 && f.Status.Kubeconfigs.LastPushError == ""
	})
	if changed := s.git("show", "--name-status", "--format=", removal); changed != "D\tkubeconfigs/beta.yaml" {
		t.Fatalf("the removal commit changed %q, want only the deletion of kubeconfigs/beta.yaml", changed)
	}
	s.fsck()

	// The sealing certificate goes missing (the Fleet now points at a
	// ConfigMap nobody made): a clear condition on the Fleet and the
	// cluster, no commit, never a plaintext fallback.
	last := s.repo.Head(t, "main")
	f = s.getFleet()
	before := f.DeepCopy()
	f.Spec.Kubeconfigs.Sealing = v1alpha1.SealingSource{ConfigMap: &v1alpha1.SealingCertificateRef{Name: "sealing-cert"}}
	if err := s.admin.Patch(ctx, f, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	s.waitFor("the missing sealing certificate reported", func() bool {
		f := s.getFleet()
		vc := s.cluster("alpha")
		return conditions.GetReason(f, v1alpha1.KubeconfigsPublishedCondition) == v1alpha1.SealingUnavailableReason &&
			conditions.GetReason(vc, v1alpha1.KubeconfigPublishedCondition) == v1alpha1.SealingUnavailableReason
	})
	if msg := conditions.GetMessage(s.getFleet(), v1alpha1.KubeconfigsPublishedCondition); !strings.Contains(msg, "ConfigMap warren-system/sealing-cert") {
		t.Errorf("the condition does not say which certificate is missing: %q", msg)
	}
	if got := s.repo.Head(t, "main"); got != last {
		t.Fatalf("without a sealing certificate warren still committed %s", got)
	}

	// 6. No plaintext kubeconfig, key or token anywhere warren writes.
	s.noPlaintextAnywhere()
}

// setUp starts the host, the sealed-secrets controller, the Git server and
// the reconciler (whose config each option may change), and creates the
// Fleet.
func setUp(t *testing.T, ctx context.Context, options ...func(*controller.Config)) *story {
	host := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1})
	sealed := sealedsecrets.ForTest(t, host, sealedsecrets.Options{})
	installWarren(t, ctx, host)
	admin, err := client.New(host.Config, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(host.Config)
	for _, ns := range []string{"team-a"} {
		if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The fleet repository, behind basic auth; warren gets write access.
	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "fleet")
	repo.CommitFiles(t, "team-a and its first cluster", map[string]string{
		"README.md":            "The platform's clusters.\n",
		"policies/team-a.yaml": fleettest.KubeconfigPolicy,
		"clusters/alpha.yaml":  fleettest.KubeconfigCluster("alpha"),
	})
	server := gitserver.Start(t, root, gitserver.Options{Username: "warren-bot", Password: "s3cret-git-token", TLS: true})
	proxy := newGitProxy(t, server.URL("fleet"), server.CACertPEM())
	if _, err := kube.CoreV1().Secrets("warren-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet-git"},
		Data:       map[string][]byte{"username": []byte("warren-bot"), "password": []byte("s3cret-git-token"), "ca.crt": proxy.caPEM},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The reconciler, in this process, with only the rights config/
	// grants its ServiceAccount, logging at trace level (V(2), the
	// most --log-level allows) into a buffer the last step searches.
	// (client-go's own request tracing starts at V(8), which no flag of
	// warren's reaches; it dumps request bodies, Secrets included.)
	logs := &syncBuffer{}
	log := funcr.New(func(prefix, args string) { logs.WriteString(prefix + " " + args + "\n") }, funcr.Options{Verbosity: logger.TraceLevel})
	cfg := controller.Config{RateLimiter: fastRetries()}
	for _, o := range options {
		o(&cfg)
	}
	reconcilertest.Run(t, ctx, host.Config, reconcilertest.Options{As: reconcilertest.ServiceAccount, Config: cfg, Log: log})

	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "warren-system", Name: "platform"},
		Spec: v1alpha1.FleetSpec{
			URL:       proxy.url + "/fleet.git",
			Ref:       &v1alpha1.GitRef{Branch: "main"},
			Interval:  metav1.Duration{Duration: 10 * time.Minute},
			SecretRef: &metaLocalRef{Name: "fleet-git"},
			Kubeconfigs: &v1alpha1.KubeconfigPublishing{
				Sealing: v1alpha1.SealingSource{Controller: &v1alpha1.SealingController{Namespace: sealed.Namespace, Service: sealed.ServiceName}},
			},
		},
	}
	if err := admin.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	return &story{t: t, ctx: ctx, host: host, admin: admin, kube: kube, repo: repo, proxy: proxy, fleet: client.ObjectKeyFromObject(fleet), logs: logs, sealed: sealed}
}

// tenantUsesTheKubeconfig applies the file as Flux or Argo CD would, waits
// for the controller to unseal it, and uses it.
func (s *story) tenantUsesTheKubeconfig(file []byte) {
	t, ctx := s.t, s.ctx
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal(file, &obj.Object); err != nil {
		t.Fatalf("kubeconfigs/alpha.yaml is not YAML: %v", err)
	}
	if obj.GetKind() != "SealedSecret" || obj.GetNamespace() != "team-a" || obj.GetName() != "alpha-kubeconfig" {
		t.Fatalf("kubeconfigs/alpha.yaml holds %s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	if _, err := dynamic.NewForConfigOrDie(s.host.Config).Resource(sealedSecretsGVR).Namespace("team-a").
		Patch(ctx, "alpha-kubeconfig", types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "gitops", Force: &force}); err != nil {
		t.Fatalf("applying kubeconfigs/alpha.yaml to the host: %v", err)
	}
	var secret *corev1.Secret
	s.waitFor("the controller to unseal team-a/alpha-kubeconfig", func() bool {
		secret, err = s.kube.CoreV1().Secrets("team-a").Get(ctx, "alpha-kubeconfig", metav1.GetOptions{})
		return err == nil
	})
	raw := secret.Data[kubeconfig.SecretKey]
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatalf("the unsealed kubeconfig does not parse: %v", err)
	}
	c := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if c.Server != "https://alpha.vc-alpha.svc:443" || c.InsecureSkipTLSVerify {
		t.Fatalf("server %q (insecure %v), want the in-host Service address with verification on", c.Server, c.InsecureSkipTLSVerify)
	}

	// A control plane started from alpha's own PKI stands in for its k3s;
	// the access bindings are applied in it as the syncer does from the
	// init-manifests ConfigMap.
	pkiSecret, err := s.kube.CoreV1().Secrets("vc-alpha").Get(ctx, "alpha-pki", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.FromSecretData(pkiSecret.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.CertificateAuthorityData, bundle.ServerCA.CertPEM) {
		t.Fatal("the kubeconfig does not trust exactly the cluster's server CA")
	}
	virtual := localkube.ForTest(t, localkube.Options{PKI: bundle, ControllerManager: true})
	init, err := s.kube.CoreV1().ConfigMaps("vc-alpha").Get(ctx, render.NamesFor(s.cluster("alpha")).InitManifests, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applyManifests(t, ctx, virtual, init.Data["00-access.yaml"])

	// The same kubeconfig, pointed at the stand-in's address (the Service
	// name does not resolve outside a cluster); its CA and credentials are
	// used as they are.
	tenantCfg, err := clientcmd.RESTConfigFromKubeConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	tenantCfg.Host = virtual.Config.Host
	tenant := kubernetes.NewForConfigOrDie(tenantCfg)
	review, err := tenant.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the tenant cannot authenticate: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "tenant:team-a" || !contains(u.Groups, "team-a") || contains(u.Groups, "system:masters") {
		t.Fatalf("the tenant authenticates as %q in %v", u.Username, u.Groups)
	}
	waitForAccess(t, ctx, tenant)
	for what, call := range map[string]func() error{
		"create a ConfigMap": func() error {
			_, err := tenant.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		},
		"read Secrets": func() error {
			_, err := tenant.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
			return err
		},
		"create a namespace": func() error {
			_, err := tenant.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}, metav1.CreateOptions{})
			return err
		},
		"delete a ServiceAccount": func() error {
			return tenant.CoreV1().ServiceAccounts("default").Delete(ctx, "default", metav1.DeleteOptions{})
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("the tenant may %s: want Forbidden, got %v", what, err)
		}
	}
}

// waitForAccess waits until `view` lets the tenant list pods and services
// everywhere (the aggregated role is filled by the controller-manager).
func waitForAccess(t *testing.T, ctx context.Context, tenant kubernetes.Interface) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err1 := tenant.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		_, err2 := tenant.CoreV1().Services("default").List(ctx, metav1.ListOptions{})
		if err1 == nil && err2 == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("`view` does not let the tenant list pods and services: %v, %v", err1, err2)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func applyManifests(t *testing.T, ctx context.Context, plane *localkube.Plane, stream string) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(plane.Config)
	if strings.TrimSpace(stream) == "" {
		t.Fatal("the cluster renders no access bindings")
	}
	for _, doc := range strings.Split(stream, "\n---\n") {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		if obj.GetKind() != "ClusterRoleBinding" {
			t.Fatalf("unexpected %s in the access manifests", obj.GetKind())
		}
		if _, err := dyn.Resource(schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}).
			Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// noPlaintextAnywhere searches every commit, the reconciler's log, the
// host's events and the status of every Fleet and VirtualCluster for the
// tenant's credentials and any credential-shaped text.
func (s *story) noPlaintextAnywhere() {
	t, ctx := s.t, s.ctx
	creds, err := kubeconfig.LoadCredentials(ctx, s.kube, "vc-alpha", kubeconfig.CredentialsSecretName("alpha"))
	if err != nil || creds == nil {
		t.Fatalf("alpha's tenant credentials: %v", err)
	}
	unsealed, err := s.kube.CoreV1().Secrets("team-a").Get(ctx, "alpha-kubeconfig", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pkiSecret, err := s.kube.CoreV1().Secrets("vc-alpha").Get(ctx, "alpha-pki", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{
		"tenant key":            creds.KeyPEM,
		"tenant key (base64)":   []byte(base64.StdEncoding.EncodeToString(creds.KeyPEM)),
		"tenant cert (base64)":  []byte(base64.StdEncoding.EncodeToString(creds.CertPEM)),
		"kubeconfig":            unsealed.Data[kubeconfig.SecretKey],
		"kubeconfig (base64)":   []byte(base64.StdEncoding.EncodeToString(unsealed.Data[kubeconfig.SecretKey])),
		"client CA key":         pkiSecret.Data["client-ca.key"],
		"Git password":          []byte("s3cret-git-token"),
		"any private key":       []byte("PRIVATE KEY"),
		"kubeconfig key field":  []byte("client-key-data"),
		"kubeconfig cert field": []byte("client-certificate-data"),
		"token field":           []byte("token:"),
	}
	if len(creds.KeyPEM) == 0 || len(unsealed.Data[kubeconfig.SecretKey]) == 0 {
		t.Fatal("nothing to search for")
	}

	history := s.git("log", "--all", "-p", "--format=commit %H%nAuthor: %an <%ae>%n%B")
	if !strings.Contains(history, "kubeconfigs/alpha.yaml") {
		t.Fatal("the history searched does not hold the kubeconfig files")
	}
	events, err := s.kube.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventText, _ := yaml.Marshal(events.Items)
	var fleets v1alpha1.FleetList
	var vcs v1alpha1.VirtualClusterList
	if err := s.admin.List(ctx, &fleets); err != nil {
		t.Fatal(err)
	}
	if err := s.admin.List(ctx, &vcs); err != nil {
		t.Fatal(err)
	}
	var statuses bytes.Buffer
	for _, f := range fleets.Items {
		b, _ := yaml.Marshal(f.Status)
		statuses.Write(b)
	}
	for _, vc := range vcs.Items {
		b, _ := yaml.Marshal(vc.Status)
		statuses.Write(b)
	}
	logText := s.logs.String()
	if !strings.Contains(logText, "kubeconfigs pushed") {
		t.Fatal("the log searched does not hold the publisher's lines")
	}
	if !strings.Contains(string(eventText), v1alpha1.PublishedReason) {
		t.Fatal("the events searched do not hold the publisher's events")
	}
	for where, text := range map[string]string{
		"Git history": history, "reconciler log": logText, "events": string(eventText), "conditions and status": statuses.String(),
	} {
		for what, secret := range secrets {
			if len(bytes.TrimSpace(secret)) > 0 && strings.Contains(text, string(secret)) {
				i := strings.Index(text, string(secret))
				t.Errorf("%s holds the %s, near: %q", where, what, text[max(0, i-300):min(len(text), i+100)])
			}
		}
	}
}

// --- Git helpers ---

func (s *story) git(args ...string) string {
	s.t.Helper()
	out, err := testkit.RunGit(s.ctx, s.repo.BareDir, args...)
	if err != nil {
		s.t.Fatalf("git %v: %v", args, err)
	}
	return out
}

func (s *story) fsck() {
	s.t.Helper()
	s.git("fsck", "--full", "--strict", "--no-dangling")
}

func (s *story) assertWarrenCommit(sha, says string) {
	s.t.Helper()
	author := s.git("show", "-s", "--format=%an <%ae>|%cn <%ce>", sha)
	if author != "warren <warren@noreply.warren.dev>|warren <warren@noreply.warren.dev>" {
		s.t.Fatalf("commit %s is by %q, want warren", sha, author)
	}
	msg := s.git("show", "-s", "--format=%B", sha)
	if !strings.Contains(msg, says) || !strings.HasPrefix(msg, "kubeconfigs: ") {
		s.t.Fatalf("commit %s says %q, want a message naming %q", sha, msg, says)
	}
}

func (s *story) countWarrenCommits() int {
	out := s.git("log", "--format=%an", "main")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if line == "warren" {
			n++
		}
	}
	return n
}

// pushUnrelated commits a file nobody else touches and pushes it, from the
// test's working clone, while warren is about to push.
func (s *story) pushUnrelated() (string, error) {
	dir := s.repo.WorkDir
	steps := [][]string{
		{"pull", "--quiet", "--ff-only", "origin", "main"},
	}
	for _, args := range steps {
		if _, err := testkit.RunGit(s.ctx, dir, args...); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "docs"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "docs", "notes.md"), []byte("meeting notes"), 0o644); err != nil {
		return "", err
	}
	for _, args := range [][]string{{"add", "docs/notes.md"}, {"commit", "--quiet", "-m", "notes from the platform meeting"}, {"push", "--quiet", "origin", "main"}} {
		if _, err := testkit.RunGit(s.ctx, dir, args...); err != nil {
			return "", err
		}
	}
	return testkit.RunGit(s.ctx, dir, "rev-parse", "HEAD")
}

// gitProxy sits in front of the Git server so a test can act at the moment
// warren starts a push.
type gitProxy struct {
	url                string
	caPEM              []byte // what a client of the proxy trusts
	mu                 sync.Mutex
	hook               func()
	receivePackAdverts atomic.Int64
}

func newGitProxy(t *testing.T, target string, targetCA []byte) *gitProxy {
	u, err := url.Parse(strings.TrimSuffix(target, "/fleet.git"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(targetCA) {
		t.Fatal("the Git server's CA does not parse")
	}
	p := &gitProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("service") == "git-receive-pack" {
			p.receivePackAdverts.Add(1)
			p.mu.Lock()
			hook := p.hook
			p.hook = nil
			p.mu.Unlock()
			if hook != nil {
				hook()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.url = srv.URL
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return p
}

// beforeReceivePack runs hook once, when the next push starts.
func (p *gitProxy) beforeReceivePack(hook func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.receivePackAdverts.Store(0)
	p.hook = hook
}

// --- Kubernetes helpers ---

func (s *story) getFleet() *v1alpha1.Fleet {
	s.t.Helper()
	var f v1alpha1.Fleet
	if err := s.admin.Get(s.ctx, s.fleet, &f); err != nil {
		s.t.Fatal(err)
	}
	return &f
}

func (s *story) cluster(name string) *v1alpha1.VirtualCluster {
	s.t.Helper()
	var vc v1alpha1.VirtualCluster
	if err := s.admin.Get(s.ctx, client.ObjectKey{Name: name}, &vc); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		s.t.Fatal(err)
	}
	return &vc
}

// requestReconcile asks for a reconcile now and waits until both the Fleet
// controller and the kubeconfig publisher have handled the request.
func (s *story) requestReconcile(value string) {
	s.t.Helper()
	f := s.getFleet()
	before := f.DeepCopy()
	if f.Annotations == nil {
		f.Annotations = map[string]string{}
	}
	f.Annotations[v1alpha1.RequestedAtAnnotation] = value
	if err := s.admin.Patch(s.ctx, f, client.MergeFrom(before)); err != nil {
		s.t.Fatal(err)
	}
	s.waitFor("both controllers to handle requested-at "+value, func() bool {
		f := s.getFleet()
		return f.Status.LastHandledRequestedAt == value && f.Status.Kubeconfigs != nil && f.Status.Kubeconfigs.LastHandledRequestedAt == value
	})
}

func (s *story) waitFor(what string, ok func() bool) {
	s.t.Helper()
	// Give up a little before the story's context ends, so the checks
	// below still reach the API server and say why.
	deadline := time.Now().Add(10 * time.Minute)
	if d, set := s.ctx.Deadline(); set {
		deadline = d.Add(-20 * time.Second)
	}
	for !ok() {
		if time.Now().After(deadline) {
			f := s.getFleet()
			var clusters v1alpha1.VirtualClusterList
			states := []string{}
			if err := s.admin.List(s.ctx, &clusters); err == nil {
				for _, vc := range clusters.Items {
					states = append(states, fmt.Sprintf("%s: Ready %s %q, KubeconfigPublished %s %q", vc.Name,
						conditions.GetReason(&vc, "Ready"), conditions.GetMessage(&vc, "Ready"),
						conditions.GetReason(&vc, v1alpha1.KubeconfigPublishedCondition), conditions.GetMessage(&vc, v1alpha1.KubeconfigPublishedCondition)))
				}
			}
			s.t.Fatalf("timed out waiting for %s; Fleet Ready: %s; KubeconfigsPublished: %s; kubeconfigs status %+v\nclusters:\n%s\nthe reconciler's last log lines:\n%s",
				what, conditions.GetMessage(f, "Ready"), conditions.GetMessage(f, v1alpha1.KubeconfigsPublishedCondition), f.Status.Kubeconfigs,
				strings.Join(states, "\n"), lastLines(s.logs.String(), 60))
		}
		select {
		case <-s.ctx.Done():
			s.t.Fatalf("the story's context ended while waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lastLines is the end of a log, n lines at most.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// renderedResources are the kinds rendering writes (subresources such as
// status are not counted: other controllers report there).
var renderedResources = []string{
	"namespaces", "statefulsets", "services", "configmaps", "secrets", "serviceaccounts", "roles", "rolebindings",
	"clusterroles", "clusterrolebindings", "resourcequotas", "limitranges", "networkpolicies", "ingresses", "virtualclusters",
}

// resourceVersions of every object in the cluster's host namespace of the
// rendered kinds, plus its VirtualCluster's generation.
func (s *story) resourceVersions(name string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	ns := "vc-" + name
	dyn := dynamic.NewForConfigOrDie(s.host.Config)
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "services"}, {Version: "v1", Resource: "configmaps"}, {Version: "v1", Resource: "secrets"},
		{Version: "v1", Resource: "serviceaccounts"}, {Version: "v1", Resource: "resourcequotas"}, {Version: "v1", Resource: "limitranges"},
		{Group: "apps", Version: "v1", Resource: "statefulsets"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"},
	} {
		list, err := dyn.Resource(gvr).Namespace(ns).List(s.ctx, metav1.ListOptions{LabelSelector: "warren.dev/cluster=" + name})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, o := range list.Items {
			out[gvr.Resource+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	if len(out) < 5 {
		s.t.Fatalf("only %d host objects of cluster %s found: %v", len(out), name, out)
	}
	vc := s.cluster(name)
	out["virtualcluster generation"] = fmt.Sprint(vc.Generation)
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
