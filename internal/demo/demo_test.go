package demo_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/internal/demo"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
)

// The demo is warren's main job on its embedded default. A person running
// `warren demo` sees every example cluster admitted, applied and Ready,
// warren's commit of their sealed kubeconfigs, one of them unsealed on the
// host by the sealed-secrets controller, then one cluster removed from Git,
// pruned, and its kubeconfig removed from Git by warren. The demo then keeps
// running, and the person follows its "Try it yourself" lines: the
// repository and the host hold what the output said they hold. Ctrl-C
// removes everything.
func TestDemoShowsTheLoopFromGitToSealedKubeconfigsAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and the sealed-secrets controller")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- demo.Run(runCtx, out, demo.Options{Nodes: 1}) }()

	for !strings.Contains(out.String(), "Still reconciling") {
		select {
		case err := <-done:
			t.Fatalf("the demo ended before it said it keeps reconciling: %v\noutput:\n%s", err, out.String())
		case <-ctx.Done():
			t.Fatalf("the demo did not reach its end within the test's deadline; output:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	text := out.String()
	kubeconfigPath := submatch(t, text, `(?m)^  export KUBECONFIG=(\S+)$`)
	clone := submatch(t, text, `(?m)^  cd (\S+)$`)

	// The output tells the story.
	for _, want := range []string{
		"simulated by kwok",
		"payments-dev       Admitted",
		"payments-staging   Applied",
		"search-ci          Ready",
		"all 4 clusters admitted, applied and Ready",
		"payments-dev       KubeconfigPublished kubeconfigs/payments-dev.yaml published in commit",
		"- apps-dev (kubeconfigs/apps-dev.yaml): new cluster",
		"- payments-dev (kubeconfigs/payments-dev.yaml): new cluster",
		"- payments-staging (kubeconfigs/payments-staging.yaml): new cluster",
		"- search-ci (kubeconfigs/search-ci.yaml): new cluster",
		"applied kubeconfigs/apps-dev.yaml to the host",
		"the kubeconfig points at https://apps-dev.vc-apps-dev.svc:443",
		"there is no container runtime",
		"search-ci pruned: its VirtualCluster and namespace vc-search-ci are gone",
		"warren removed kubeconfigs/search-ci.yaml from Git",
		"- search-ci: cluster removed",
		"kubeconfigs/ now holds:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q; it was:\n%s", want, text)
		}
	}
	for _, f := range []string{"apps-dev", "payments-dev", "payments-staging", "search-ci"} {
		ns := strings.SplitN(f, "-", 2)[0]
		row := regexp.MustCompile(`kubeconfigs/` + f + `\.yaml\s+SealedSecret\s+` + ns + `/` + f + `-kubeconfig\s+config\n`)
		if !row.MatchString(text) {
			t.Errorf("the demo's output does not list kubeconfigs/%s.yaml as a SealedSecret with its target and key", f)
		}
	}
	if i := strings.Index(text, "pruned"); i >= 0 && strings.Contains(text[i:], "search-ci   ") {
		t.Errorf("search-ci still listed after the prune:\n%s", text[i:])
	}
	if i := strings.Index(text, "now holds:"); i >= 0 && strings.Contains(text[i:], "search-ci.yaml") {
		t.Errorf("search-ci's kubeconfig still listed after warren removed it:\n%s", text[i:])
	}

	// The repository: the clone pulls and pushes as `git pull` and `git
	// push` with no arguments, and its remote holds warren's commits and
	// the sealed files the output showed.
	git := func(dir string, args ...string) string {
		t.Helper()
		s, err := testkit.RunGit(ctx, dir, args...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	remote := git(clone, "remote", "get-url", "origin")
	if got := git(clone, "rev-parse", "--abbrev-ref", "@{upstream}"); got != "origin/main" {
		t.Errorf("the clone's main tracks %q, want origin/main", got)
	}
	git(clone, "pull", "--ff-only")
	if st := git(clone, "status", "--porcelain"); st != "" {
		t.Errorf("the clone is not clean after the demo:\n%s", st)
	}
	if got := git(remote, "ls-tree", "--name-only", "main", "kubeconfigs/"); got != "kubeconfigs/apps-dev.yaml\nkubeconfigs/payments-dev.yaml\nkubeconfigs/payments-staging.yaml" {
		t.Errorf("the remote's kubeconfigs/ holds %q, want apps-dev.yaml, payments-dev.yaml and payments-staging.yaml", got)
	}
	var sealed ssv1alpha1.SealedSecret
	if err := yaml.UnmarshalStrict([]byte(git(remote, "show", "main:kubeconfigs/payments-dev.yaml")), &sealed); err != nil {
		t.Fatalf("kubeconfigs/payments-dev.yaml: %v", err)
	}
	if sealed.Kind != "SealedSecret" || sealed.Namespace != "payments" || sealed.Name != "payments-dev-kubeconfig" || len(sealed.Spec.EncryptedData[kubeconfig.SecretKey]) < 64 {
		t.Fatalf("kubeconfigs/payments-dev.yaml is a %s %s/%s with encrypted keys %v, want a SealedSecret payments/payments-dev-kubeconfig sealing %q",
			sealed.Kind, sealed.Namespace, sealed.Name, keys(sealed.Spec.EncryptedData), kubeconfig.SecretKey)
	}
	if n := strings.Count(git(remote, "log", "--format=%H", "main", "--", "kubeconfigs/search-ci.yaml"), "\n") + 1; n != 2 {
		t.Errorf("%d commits touched kubeconfigs/search-ci.yaml, want two: added, then removed", n)
	}
	warrenCommits := git(remote, "log", "--author=warren@noreply.warren.dev", "--format=%H %an <%ae>|%s", "main")
	if warrenCommits == "" {
		t.Fatal("the remote holds no commit by warren")
	}
	for _, line := range strings.Split(warrenCommits, "\n") {
		sha, rest, _ := strings.Cut(line, " ")
		author, subject, _ := strings.Cut(rest, "|")
		if !strings.HasPrefix(subject, "kubeconfigs: ") {
			t.Errorf("warren's commit %s says %q", sha, subject)
		}
		if !strings.Contains(text, "commit "+sha[:12]+"  "+author) {
			t.Errorf("the output does not show warren's commit %s by %s", sha[:12], author)
		}
	}
	lastByWarren := git(remote, "rev-parse", "main")
	if err := os.WriteFile(filepath.Join(clone, "README.md"), []byte("A change pushed by hand.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(clone, "commit", "--quiet", "-am", "A change pushed by hand")
	git(clone, "push", "--quiet")
	if got, want := git(remote, "rev-parse", "main"), git(clone, "rev-parse", "HEAD"); got != want {
		t.Errorf("`git push` from the clone left the remote's main at %s, not %s", got, want)
	}

	// The host, through the printed kubeconfig.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: controller.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var fleet v1alpha1.Fleet
	if err := c.Get(ctx, client.ObjectKey{Namespace: "warren-system", Name: "example"}, &fleet); err != nil {
		t.Fatal(err)
	}
	if fleet.Spec.URL != remote {
		t.Errorf("the Fleet reads %s, not the clone's remote %s", fleet.Spec.URL, remote)
	}
	if !conditions.IsTrue(&fleet, v1alpha1.KubeconfigsPublishedCondition) || fleet.Status.Kubeconfigs == nil || fleet.Status.Kubeconfigs.LastCommit != lastByWarren {
		t.Errorf("the Fleet reports KubeconfigsPublished %q and status.kubeconfigs %+v, want True and last commit %s",
			conditions.GetMessage(&fleet, v1alpha1.KubeconfigsPublishedCondition), fleet.Status.Kubeconfigs, lastByWarren)
	}
	var dev v1alpha1.VirtualCluster
	if err := c.Get(ctx, client.ObjectKey{Name: "apps-dev"}, &dev); err != nil {
		t.Fatal(err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "apps-dev-kubeconfig"}, &secret); err != nil {
		t.Fatalf("the Secret the demo says was unsealed: %v", err)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].Kind != "SealedSecret" {
		t.Errorf("Secret apps/apps-dev-kubeconfig is owned by %+v, want its SealedSecret", secret.OwnerReferences)
	}
	plain := secret.Data[kubeconfig.SecretKey]
	tenant, err := clientcmd.Load(plain)
	if err != nil {
		t.Fatalf("the unsealed Secret holds no kubeconfig: %v", err)
	}
	current := tenant.Contexts[tenant.CurrentContext]
	if current == nil || tenant.Clusters[current.Cluster].Server != dev.Status.Endpoint {
		t.Errorf("the unsealed kubeconfig does not point at apps-dev's endpoint %s", dev.Status.Endpoint)
	}
	if want := "holding config (" + strconv.Itoa(len(plain)) + " bytes)"; !strings.Contains(text, want) {
		t.Errorf("the output does not give the unsealed Secret's key and size as %q", want)
	}

	// Nothing secret reached the output.
	user := tenant.AuthInfos[current.AuthInfo]
	for what, value := range map[string][]byte{
		"kubeconfig":            plain,
		"kubeconfig (base64)":   []byte(base64.StdEncoding.EncodeToString(plain)),
		"client key":            user.ClientKeyData,
		"client key (base64)":   []byte(base64.StdEncoding.EncodeToString(user.ClientKeyData)),
		"any private key":       []byte("PRIVATE KEY"),
		"kubeconfig key field":  []byte("client-key-data"),
		"kubeconfig cert field": []byte("client-certificate-data"),
		"sealed ciphertext":     []byte(sealed.Spec.EncryptedData[kubeconfig.SecretKey][:64]),
	} {
		if len(value) == 0 {
			t.Errorf("nothing to search the output for as the %s", what)
		} else if strings.Contains(text, string(value)) {
			t.Errorf("the demo's output holds the %s", what)
		}
	}

	// Ctrl-C: the demo ends cleanly and removes what it made.
	interrupt()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the demo ended with %v after Ctrl-C", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not end within a minute of Ctrl-C")
	}
	for _, dir := range []string{clone, remote, kubeconfigPath} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there after the demo ended", dir)
		}
	}
}

func submatch(t *testing.T, text, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("the demo's output has no line matching %s:\n%s", pattern, text)
	}
	return m[1]
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// syncBuffer is the demo's output, read while the demo writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
