package flux_test

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/test/flux"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

func object(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func gitRepository(name, url, secret string) string {
	return fmt.Sprintf(`apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: %s, namespace: flux-system}
spec:
  interval: 10m
  url: %s
  ref: {branch: main}
  secretRef: {name: %s}
`, name, url, secret)
}

// Flux's controllers, run from the tools cache, fetch a repository from
// the test Git server over HTTPS (basic auth, the server's CA given through
// the GitRepository's Secret) and over SSH (an identity and the server's
// known_hosts), apply what it holds, and refuse a server whose certificate
// or host key they were not told to trust.
func TestFluxFetchesOverHTTPSAndSSHAndApplies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and Flux's controllers")
	}
	plane := localkube.ForTest(t, localkube.Options{})
	controllers := flux.ForTest(t, plane)
	ctx := t.Context()
	kube := kubernetes.NewForConfigOrDie(plane.Config)

	root := t.TempDir()
	repo := gitserver.NewRepo(t, root, "apps")
	repo.CommitFiles(t, "a ConfigMap", map[string]string{
		"deploy/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello, namespace: default}\ndata: {greeting: hi}\n",
	})
	https := gitserver.Start(t, root, gitserver.Options{Username: "reader", Password: "read-token", TLS: true})
	other := gitserver.Start(t, root, gitserver.Options{Username: "reader", Password: "read-token", TLS: true})
	key, pub := gitserver.NewSSHKey(t)
	ssh := gitserver.StartSSH(t, root, pub)
	otherSSH := gitserver.StartSSH(t, root, pub)
	secrets := map[string]map[string][]byte{
		"https":       {"username": []byte("reader"), "password": []byte("read-token"), "ca.crt": https.CACertPEM()},
		"https-wrong": {"username": []byte("reader"), "password": []byte("read-token"), "ca.crt": other.CACertPEM()},
		"ssh":         {"identity": key, "known_hosts": ssh.KnownHosts},
		// Another server's host key, listed for this server's address.
		"ssh-wrong": {"identity": key, "known_hosts": []byte(strings.Replace(string(otherSSH.KnownHosts),
			knownhosts.Normalize(otherSSH.Addr), knownhosts.Normalize(ssh.Addr), 1))},
	}
	for name, data := range secrets {
		if _, err := kube.CoreV1().Secrets(flux.Namespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	flux.Apply(t, ctx, plane.Config, "test",
		object(t, gitRepository("https", https.URL("apps"), "https")),
		object(t, gitRepository("ssh", ssh.URL("apps"), "ssh")),
		object(t, gitRepository("https-wrong", https.URL("apps"), "https-wrong")),
		object(t, gitRepository("ssh-wrong", ssh.URL("apps"), "ssh-wrong")),
		object(t, `apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: apps, namespace: flux-system}
spec:
  interval: 10m
  sourceRef: {kind: GitRepository, name: ssh}
  path: ./deploy
  prune: true
`))
	head := repo.Head(t, "main")
	for _, name := range []string{"https", "ssh"} {
		obj := flux.WaitReady(t, plane.Config, flux.GitRepositories, name, 2*time.Minute)
		if rev, _, _ := unstructured.NestedString(obj.Object, "status", "artifact", "revision"); rev != "main@sha1:"+head {
			t.Errorf("GitRepository %s fetched %q, want main@sha1:%s", name, rev, head)
		}
		if url, _, _ := unstructured.NestedString(obj.Object, "status", "artifact", "url"); !strings.HasPrefix(url, controllers.ArtifactURL+"/") {
			t.Errorf("GitRepository %s's artifact is at %q, not on the loopback artifact server %s", name, url, controllers.ArtifactURL)
		}
	}
	flux.WaitReady(t, plane.Config, flux.Kustomizations, "apps", 2*time.Minute)
	cm, err := kube.CoreV1().ConfigMaps("default").Get(ctx, "hello", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != "hi" {
		t.Fatalf("the Kustomization did not apply the ConfigMap: %v %v", cm, err)
	}
	if managers := managerNames(cm.ManagedFields); managers != flux.KustomizeController {
		t.Errorf("the ConfigMap's field managers are %q, want kustomize-controller alone", managers)
	}

	for name, want := range map[string]*regexp.Regexp{"https-wrong": regexp.MustCompile(`x509|certificate`), "ssh-wrong": regexp.MustCompile(`(?i)host ?key|knownhosts`)} {
		ri := flux.Dynamic(plane.Config, flux.GitRepositories)
		testkit.Eventually(t, time.Minute, "GitRepository "+name+" to fail on an untrusted server", func() (bool, string) {
			obj, err := ri.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			status, msg := flux.Condition(obj, "Ready")
			return status == "False" && want.MatchString(msg), status + ": " + msg
		})
	}

	pids := []int{controllers.Source.PID(), controllers.Kustomize.PID()}
	controllers.Stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("Flux controller %d still runs after Stop", pid)
		}
	}
}

func managerNames(fields []metav1.ManagedFieldsEntry) string {
	var names []string
	for _, f := range fields {
		names = append(names, f.Manager)
	}
	return strings.Join(names, ",")
}
