package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/syncer/translate"
	"github.com/warren-dev/warren/test/testkit"
)

// A developer reads their pod's logs with kubectl, as on any cluster: the
// lines come from the host twin (kwok reads them from a file this test
// writes), and --tail, --since, --timestamps, -c and -f behave as usual.
func TestKubectlLogsShowTheHostTwinsLines(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "logs")
	dev := newDeveloper(t, ctx, ns)
	host := runningPod(t, ctx, ns, "web")
	app, sidecar := newCRILog(t, "app"), newCRILog(t, "sidecar")
	app.write(time.Now().Add(-2*time.Hour), "old one", "old two")
	app.write(time.Now(), "new one", "new two")
	sidecar.write(time.Now(), "sidecar says hi")
	kwokObject(t, ctx, "Logs", host, map[string]any{"logs": []any{
		map[string]any{"containers": []any{"app"}, "logsFile": app.path},
		map[string]any{"containers": []any{"sidecar"}, "logsFile": sidecar.path},
	}})

	testkit.Eventually(t, 30*time.Second, "kubectl logs returns the host twin's lines", func() (bool, string) {
		out, errOut, code := dev.run(t, "", "logs", "web", "-c", "app")
		return code == 0 && out == "old one\nold two\nnew one\nnew two\n", fmt.Sprintf("exit %d: %q %q", code, out, errOut)
	})
	if out := dev.must(t, "logs", "web", "-c", "app", "--tail=1"); out != "new two\n" {
		t.Errorf("--tail=1: %q", out)
	}
	if out := dev.must(t, "logs", "web", "-c", "app", "--since=1h"); out != "new one\nnew two\n" {
		t.Errorf("--since=1h: %q", out)
	}
	out := dev.must(t, "logs", "web", "-c", "app", "--tail=1", "--timestamps")
	stamp, line, _ := strings.Cut(out, " ")
	if at, err := time.Parse(time.RFC3339Nano, stamp); err != nil || line != "new two\n" || time.Since(at) > time.Hour {
		t.Errorf("--timestamps: %q (%v)", out, err)
	}
	if out := dev.must(t, "logs", "web", "-c", "sidecar"); out != "sidecar says hi\n" {
		t.Errorf("-c sidecar: %q", out)
	}
	if out := dev.must(t, "logs", "web", "-c", "app", "--limit-bytes=7"); out != "old one" {
		t.Errorf("--limit-bytes=7: %q", out)
	}

	// -f: a line written after the call began arrives.
	follow := dev.cmd(t.Context(), "logs", "-f", "web", "-c", "app", "--tail=1")
	lines := startLines(t, follow)
	waitLine(t, lines, "new two")
	app.write(time.Now(), "written after the call began")
	waitLine(t, lines, "written after the call began")
}

// startLines starts cmd and sends each line it prints.
func startLines(t *testing.T, cmd interface {
	StdoutPipe() (io.ReadCloser, error)
	Start() error
}) <-chan string {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the output ended before %q", want)
			}
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("%q not printed within 30s; syncer log:\n%s", want, w.syncer.tail())
		}
	}
}

// kubectl exec runs the command in the host twin (kwok runs it as a real
// local command, in a directory of this test) and prints its output; exec -i
// carries stdin; kubectl cp copies a file in and back out.
//
// The exit code: kwok's local exec reports a command that exits non-zero as
// an internal error, not as the kubelet's NonZeroExitCode status, so kubectl
// exec straight on the host exits 1, not 3. What warren controls is that the
// virtual cluster answers exactly as the host does, which this story
// asserts; that a kubelet's exit code comes back unchanged is
// TestExecCarriesTheHostExitCode in syncer/kubelet (and the real-node story
// where real nodes run).
func TestKubectlExecAndCpReachTheHostTwin(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "exec")
	dev := newDeveloper(t, ctx, ns)
	host := runningPod(t, ctx, ns, "web")
	dir := t.TempDir()
	kwokObject(t, ctx, "Exec", host, map[string]any{"execs": []any{
		map[string]any{"containers": []any{"app"}, "local": map[string]any{"workDir": dir,
			// GNU tar reads stdin in whole 10 KiB records; in 512-byte ones
			// it extracts the end of an archive without waiting for more (see cp below).
			"envs": []any{map[string]any{"name": "TAR_OPTIONS", "value": "--blocking-factor=1"}}}},
	}})

	testkit.Eventually(t, 30*time.Second, "kubectl exec prints the output and exits 0", func() (bool, string) {
		out, errOut, code := dev.run(t, "", "exec", "web", "-c", "app", "--", "sh", "-c", "echo hello from $PWD")
		return code == 0 && out == "hello from "+dir+"\n", fmt.Sprintf("exit %d: %q %q", code, out, errOut)
	})
	failing := func(pod string) []string {
		return []string{"exec", pod, "-c", "app", "--", "sh", "-c", "echo about to fail; exit 3"}
	}
	hostOut, hostErr, hostCode := hostAdmin(t).run(t, "", failing(host)...)
	out, errOut, code := dev.run(t, "", failing("web")...)
	if code != hostCode || out != hostOut || out != "about to fail\n" || code == 0 {
		t.Errorf("a failing command: exit %d %q %q through the virtual cluster, exit %d %q %q on the host", code, out, errOut, hostCode, hostOut, hostErr)
	}
	if out, errOut, code := dev.run(t, "", "exec", "web", "-c", "app", "--", "sh", "-c", "echo to stderr >&2"); code != 0 || out != "" || errOut != "to stderr\n" {
		t.Errorf("stderr: exit %d %q %q", code, out, errOut)
	}
	// kwok never closes a local command's stdin (it copies the stream into
	// the pipe and leaves it open), so on kwok a command that reads to the
	// end of its input waits forever, on the host as here; head stops by
	// itself. That the end of stdin is relayed is in TestExecCarriesTheHostExitCode.
	if out, errOut, code := dev.run(t, "piped in\nand more\n", "exec", "-i", "web", "-c", "app", "--", "head", "-n", "2"); code != 0 || out != "piped in\nand more\n" {
		t.Errorf("exec -i: exit %d %q %q", code, out, errOut)
	}

	src := filepath.Join(t.TempDir(), "report.txt")
	content := strings.Repeat("a line of the report\n", 5000)
	if err := os.WriteFile(src, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// kubectl cp into a pod runs tar -x reading stdin, and GNU tar reads its
	// input to the end after the archive: on kwok (above) kubectl cp then
	// never exits, so the story waits for the file, whole, and stops it.
	// kubectl cp out of the pod ends by itself.
	cpCtx, stopCp := context.WithCancel(t.Context())
	cpIn := dev.cmd(cpCtx, "cp", "-c", "app", src, ns+"/web:"+dir+"/copied.txt")
	if err := cpIn.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, "kubectl cp copies the file into the pod", func() (bool, string) {
		got, err := os.ReadFile(filepath.Join(dir, "copied.txt"))
		return err == nil && string(got) == content, fmt.Sprintf("%d bytes, %v", len(got), err)
	})
	stopCp()
	_ = cpIn.Wait()
	back := filepath.Join(t.TempDir(), "back.txt")
	dev.must(t, "cp", "-c", "app", ns+"/web:"+dir+"/copied.txt", back)
	if got, err := os.ReadFile(back); err != nil || string(got) != content {
		t.Fatalf("kubectl cp out of the pod: %d bytes, %v", len(got), err)
	}
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)

// kubectl port-forward reaches a listener of the pod (kwok forwards to a
// real local listener of this test), and two forwards at once both work,
// each with two connections at once.
func TestKubectlPortForwardReachesTheHostTwin(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "forward")
	dev := newDeveloper(t, ctx, ns)
	host := runningPod(t, ctx, ns, "web")
	target := pongServer(t)
	kwokObject(t, ctx, "PortForward", host, map[string]any{"forwards": []any{
		map[string]any{"ports": []any{int64(8080)}, "target": map[string]any{"address": "127.0.0.1", "port": int64(target)}},
	}})

	var ports []string
	for range 2 {
		pf := dev.cmd(t.Context(), "port-forward", "pod/web", ":8080")
		lines := startLines(t, pf)
		port := ""
		deadline := time.After(30 * time.Second)
		for port == "" {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl port-forward ended; syncer log:\n%s", w.syncer.tail())
				}
				if m := forwarding.FindStringSubmatch(l); m != nil {
					port = m[1]
				}
			case <-deadline:
				t.Fatal("kubectl port-forward did not say where it listens")
			}
		}
		ports = append(ports, port)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i, port := range append(ports, ports...) {
		wg.Go(func() {
			if err := ping(port, fmt.Sprintf("ping %d", i)); err != nil {
				errs <- fmt.Errorf("forward on port %s: %w", port, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// pongServer answers every line it reads with "pong: <line>".
func pongServer(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "pong: %s\n", sc.Text())
				}
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func ping(port, msg string) error {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != "pong: "+msg+"\n" {
		return fmt.Errorf("got %q", got)
	}
	return nil
}

// The syncer's kubelet API answers the virtual API server only, and only
// for synced pods of its own cluster; none of these refusals reaches the
// host API (its request counters for pod logs, exec, attach and
// port-forward do not move).
func TestTheKubeletAPIRefusesAndTheHostHearsNothing(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "refusals")
	dev := newDeveloper(t, ctx, ns)
	runningPod(t, ctx, ns, "web")
	// A host pod in the host namespace that the syncer did not make, and
	// one of another virtual cluster sharing the namespace, sitting at the
	// host name this cluster's pod "victim" would have; each with a log
	// kwok would serve.
	secret := newCRILog(t, "secret")
	secret.write(time.Now(), "another tenant's secret")
	unsynced := unique("unsynced")
	victimHost := w.names.HostName(ns, "victim")
	other := translate.Translator{Cluster: "other", HostNamespace: hostNamespace}
	theirs := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: victimHost, Namespace: hostNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	other.Mark(theirs, translate.Origin{Kind: "Pod", Namespace: ns, Name: "victim", UID: "0"})
	create(t, ctx, w.hostC, theirs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: unsynced, Namespace: hostNamespace},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}})
	for _, p := range []string{victimHost, unsynced} {
		kwokObject(t, ctx, "Logs", p, map[string]any{"logs": []any{map[string]any{"logsFile": secret.path}}})
	}
	create(t, ctx, w.virtualC, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}})

	before := hostStreamingCalls(t, ctx)
	call := func(path string, certs ...tls.Certificate) int {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(w.virtual.PKI.ServerCA.CertPEM)
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := c.Get("https://" + w.kubeletAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(body), "secret") {
			t.Errorf("%s: the answer carries another pod's log: %q", path, body)
		}
		return resp.StatusCode
	}
	apiServer, err := tls.LoadX509KeyPair(w.virtual.Kubelet.APIServerClientCert, w.virtual.Kubelet.APIServerClientKey)
	if err != nil {
		t.Fatal(err)
	}
	foreignBundle, _ := pki.Generate("foreign")
	foreignCreds, _ := foreignBundle.Kubelet([]string{"127.0.0.1"})
	foreign, _ := tls.X509KeyPair(foreignCreds.APIServerClient.CertPEM, foreignCreds.APIServerClient.KeyPEM)

	for _, c := range []struct {
		what, path string
		certs      []tls.Certificate
		want       int
	}{
		{"no client certificate", "/containerLogs/" + ns + "/web/app", nil, http.StatusUnauthorized},
		{"a foreign client certificate", "/containerLogs/" + ns + "/web/app", []tls.Certificate{foreign}, http.StatusForbidden},
		{"a host pod that is not synced", "/containerLogs/" + hostNamespace + "/" + unsynced + "/app", []tls.Certificate{apiServer}, http.StatusNotFound},
		{"another virtual cluster's pod, by its host name", "/containerLogs/" + hostNamespace + "/" + victimHost + "/app", []tls.Certificate{apiServer}, http.StatusNotFound},
		{"another virtual cluster's pod, at this cluster's name", "/containerLogs/" + ns + "/victim/app", []tls.Certificate{apiServer}, http.StatusNotFound},
		{"exec in another virtual cluster's pod", "/exec/" + ns + "/victim/app?command=id&output=1", []tls.Certificate{apiServer}, http.StatusNotFound},
	} {
		if got := call(c.path, c.certs...); got != c.want {
			t.Errorf("%s: %d, want %d", c.what, got, c.want)
		}
	}
	// Through the tenant's own kubeconfig, the pod without a twin shows
	// none of the other cluster's log (it was never bound to a virtual
	// node, so, as on any cluster, its log is empty).
	if out, errOut, code := dev.run(t, "", "logs", "victim"); strings.Contains(out+errOut, "secret") {
		t.Errorf("kubectl logs of a pod that has no twin: exit %d %q %q", code, out, errOut)
	}
	if after := hostStreamingCalls(t, ctx); after != before {
		t.Errorf("the host API saw %v pod log/exec/attach/port-forward requests during the refusals", after-before)
	}
	if !strings.Contains(w.syncer.tail(), "refused") {
		t.Error("the syncer did not log its refusals")
	}
}

// Restarting the syncer in the middle of kubectl logs -f ends that stream
// cleanly (kubectl exits 0), and the next kubectl logs reaches the new one.
func TestASyncerRestartEndsAFollowedLogCleanly(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "restart")
	dev := newDeveloper(t, ctx, ns)
	host := runningPod(t, ctx, ns, "web")
	app := newCRILog(t, "app")
	app.write(time.Now(), "before the restart")
	kwokObject(t, ctx, "Logs", host, map[string]any{"logs": []any{map[string]any{"logsFile": app.path}}})
	testkit.Eventually(t, 30*time.Second, "the log", func() (bool, string) {
		out, errOut, code := dev.run(t, "", "logs", "web", "-c", "app")
		return code == 0 && out == "before the restart\n", out + errOut
	})

	follow := dev.cmd(t.Context(), "logs", "-f", "web", "-c", "app")
	lines := startLines(t, follow)
	waitLine(t, lines, "before the restart")
	w.syncer.stop()
	exited := make(chan error, 1)
	go func() { exited <- follow.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("kubectl logs -f ended with %v, want a clean end", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("kubectl logs -f still runs 30s after the syncer stopped")
	}
	if err := w.startSyncer(); err != nil {
		t.Fatal(err)
	}
	app.write(time.Now(), "after the restart")
	testkit.Eventually(t, 60*time.Second, "kubectl logs through the new syncer", func() (bool, string) {
		out, errOut, code := dev.run(t, "", "logs", "web", "-c", "app")
		return code == 0 && out == "before the restart\nafter the restart\n", out + errOut
	})
}
