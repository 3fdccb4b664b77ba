package realnodes

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kubeletStories: through the tenant's own kubeconfig, kubectl logs, exec
// and port-forward reach the tenant's pods on the real node, through the
// syncer's kubelet API in the control plane pod and the host twin's
// subresources, and answer exactly as kubectl straight on the host does.
// (The same stories on kwok, with the rest of the options: the syncer's e2e
// suite, kubelet_test.go.)
func (s *story) kubeletStories(t *testing.T) {
	s.t = t
	client := s.hostPod("alpha", "client")

	// logs: the in-cluster client logs "calling /healthz" every second.
	out, errOut, code := s.run(s.kubeIn, "", "logs", "api", "--tail=3")
	if code != 0 || !strings.Contains(out, "calling /healthz") || strings.Count(out, "\n") != 3 {
		t.Errorf("kubectl logs api --tail=3: exit %d\n%s%s", code, out, errOut)
	}
	stamped, _, _ := s.run(s.kubeIn, "", "logs", "api", "--tail=1", "--timestamps")
	if at, err := time.Parse(time.RFC3339Nano, strings.Fields(stamped + " x")[0]); err != nil || time.Since(at) > time.Minute {
		t.Errorf("kubectl logs --timestamps: %q (%v)", stamped, err)
	}
	// -f --tail=0: whatever arrives was written after the call began.
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	follow := exec.CommandContext(ctx, filepath.Join(s.tools, "kubectl"), "--kubeconfig", s.kubeIn, "logs", "-f", "--tail=0", "api")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for seen := 0; seen < 2; {
		if !sc.Scan() {
			t.Fatalf("kubectl logs -f ended: %v", sc.Err())
		}
		if strings.Contains(sc.Text(), "calling /healthz") {
			seen++
		}
	}
	cancel()
	_ = follow.Wait()

	// exec: output, and a command's exit code, as on the host.
	if out, errOut, code := s.run(s.kubeIn, "", "exec", "client", "--", "/agnhost", "etc-hosts"); code != 0 || !strings.Contains(out, "localhost") {
		t.Errorf("kubectl exec client -- /agnhost etc-hosts: exit %d\n%s%s", code, out, errOut)
	}
	refused := []string{"--", "/agnhost", "connect", "127.0.0.1:1", "--timeout=5s"}
	vOut, vErr, vCode := s.run(s.kubeIn, "", append([]string{"exec", "client"}, refused...)...)
	hOut, hErr, hCode := s.run(s.host.KubeconfigPath, "", append([]string{"exec", "-n", client.Namespace, client.Name}, refused...)...)
	if vCode != 1 || vCode != hCode || vOut != hOut || !strings.Contains(vErr, "REFUSED") || !strings.Contains(vErr, "command terminated with exit code 1") {
		t.Errorf("a command exiting 1: exit %d %q %q through the virtual cluster, exit %d %q %q on the host", vCode, vOut, vErr, hCode, hOut, hErr)
	}

	// port-forward: agnhost netexec answers /hostname with its pod's name.
	pfCtx, stopForward := context.WithCancel(s.ctx)
	defer stopForward()
	port := s.portForward(pfCtx, "pod/client", "8080")
	for range 2 {
		if name, err := get("http://127.0.0.1:" + port + "/hostname"); err != nil || name == "" {
			t.Errorf("GET /hostname through kubectl port-forward: %q %v", name, err)
		}
	}
}

// run runs kubectl with kubeconfig: its output, error output and exit code.
func (s *story) run(kubeconfig, stdin string, args ...string) (string, string, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.tools, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errOut, strings.NewReader(stdin)
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode()
	} else if err != nil {
		s.t.Fatalf("kubectl %v: %v", args, err)
	}
	return out.String(), errOut.String(), 0
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// portForward starts kubectl port-forward as the tenant until ctx ends and
// returns the local port.
func (s *story) portForward(ctx context.Context, target, port string) string {
	s.t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(s.tools, "kubectl"), "--kubeconfig", s.kubeIn, "port-forward", target, ":"+port)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := forwarding.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return m[1]
		}
	}
	s.t.Fatalf("kubectl port-forward %s ended: %v", target, sc.Err())
	return ""
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return string(body), err
}
