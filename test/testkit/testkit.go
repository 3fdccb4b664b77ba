// Package testkit holds the small helpers warren's tests share: waiting on a
// condition with a deadline, running the git CLI isolated from the machine's
// configuration, picking a free loopback address, and checking that sealed
// output carries no plaintext credential. It is imported by tests
// only and must never be imported by the shipped binaries.
package testkit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/internal/localplane"
	"k8s.io/client-go/tools/clientcmd"
)

// pollInterval is how often Eventually asks again, bounded by its deadline.
const pollInterval = 100 * time.Millisecond

// Eventually polls cond until it holds or timeout passes; then the test fails
// with what was awaited and the last state cond described.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(pollInterval)
	}
}

// RunGit runs the git CLI in dir (empty: the current directory) with the
// machine's and user's configuration ignored and a fixed test identity, and
// returns its trimmed standard output.
func RunGit(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test Author",
		"GIT_AUTHOR_EMAIL=author@example.test",
		"GIT_COMMITTER_NAME=Test Author",
		"GIT_COMMITTER_EMAIL=author@example.test",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Git is RunGit that fails t when git fails.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := RunGit(context.Background(), dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LoopbackAddr is a loopback host:port free at this instant.
func LoopbackAddr() (string, error) {
	port, err := localplane.FreePort("127.0.0.1")
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// FreeAddr is LoopbackAddr that fails t when no port is free.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := LoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// AssertNoPlaintext fails t if any credential, or any line of the plaintext
// kubeconfig's secret material, appears in out in any common encoding.
func AssertNoPlaintext(t testing.TB, out, plain []byte) {
	t.Helper()
	cfg, err := clientcmd.Load(plain)
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for _, u := range cfg.AuthInfos {
		secrets = append(secrets, u.ClientKeyData, u.ClientCertificateData, []byte(u.Token))
	}
	secrets = append(secrets, plain)
	for _, s := range secrets {
		if len(bytes.TrimSpace(s)) == 0 {
			continue
		}
		forms := [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s))}
		if block, _ := pem.Decode(s); block != nil {
			body := base64.StdEncoding.EncodeToString(block.Bytes)
			forms = append(forms, []byte(body[:64]), []byte(body[len(body)-64:]))
		}
		for _, f := range forms {
			if bytes.Contains(out, f) {
				t.Fatalf("sealed file contains plaintext credential material (%d bytes)", len(f))
			}
		}
	}
	for _, marker := range []string{"PRIVATE KEY", "BEGIN CERTIFICATE", "client-key-data", "client-certificate-data", "token:"} {
		if strings.Contains(string(out), marker) {
			t.Fatalf("sealed file contains %q", marker)
		}
	}
}
