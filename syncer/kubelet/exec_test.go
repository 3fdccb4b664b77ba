package kubelet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	streamserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/translate"
)

// hostKubelet runs a command the way a kubelet's runtime would report it:
// its output, its stdin echoed, and the exit code of "exit N".
type hostKubelet struct{}

func (hostKubelet) ExecInContainer(_ context.Context, _, _, _ string, cmd []string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan streamserver.TerminalSize, _ time.Duration) error {
	_, _ = io.WriteString(out, "ran "+strings.Join(cmd, " ")+"\n")
	if in != nil {
		_, _ = io.Copy(out, in)
	}
	if cmd[0] == "exit" {
		return utilexec.CodeExitError{Err: errors.New("exit status " + cmd[1]), Code: int(cmd[1][0] - '0')}
	}
	return nil
}

// The exit code of a command run in the host twin comes back to the
// virtual API server as the kubelet's own NonZeroExitCode status, so kubectl
// exec exits with it; stdout and stdin are carried both ways. (kwok's local
// exec reports a non-zero exit as an internal error, so the e2e story can
// only compare with the host; here the host answers as a kubelet does, with
// the kubelet's own stream helpers behind a plain SPDY upgrade.)
func TestExecCarriesTheHostExitCode(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	v, h := pods(names, "team", "web", "11111111-1111-1111-1111-111111111111", nil)
	host := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The host API server's pods/exec parameters, as it hands them to a kubelet.
		q := r.URL.Query()
		opts := &streamserver.Options{Stdin: q.Get("stdin") == "true", Stdout: q.Get("stdout") == "true", Stderr: q.Get("stderr") == "true"}
		streamserver.ServeExec(w, r, hostKubelet{}, "", "", "app", r.URL.Query()["command"], opts,
			time.Minute, 10*time.Second, streamserver.SupportedStreamingProtocols)
	})
	f := startWithHost(t, []client.Object{v}, []client.Object{h}, host)

	for _, c := range []struct {
		cmd      string
		stdin    string
		wantOut  string
		wantCode int
	}{
		{"true", "", "ran true\n", 0},
		{"exit 3", "", "ran exit 3\n", 3},
		{"cat", "piped in\n", "ran cat\npiped in\n", 0},
	} {
		u := f.client.Host + "/exec/team/web/app?output=1&error=1"
		for _, arg := range strings.Fields(c.cmd) {
			u += "&command=" + arg
		}
		if c.stdin != "" {
			u += "&input=1"
		}
		req, _ := http.NewRequest(http.MethodPost, u, nil)
		exec, err := remotecommand.NewSPDYExecutor(f.client, http.MethodPost, req.URL)
		if err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}
		if c.stdin != "" {
			opts.Stdin = strings.NewReader(c.stdin)
		}
		err = exec.StreamWithContext(t.Context(), opts)
		code := 0
		var exit utilexec.CodeExitError
		if errors.As(err, &exit) {
			code = exit.Code
		} else if err != nil {
			t.Fatalf("%s: %v", c.cmd, err)
		}
		if code != c.wantCode || out.String() != c.wantOut {
			t.Errorf("%s: exit %d %q %q, want exit %d %q", c.cmd, code, out.String(), errOut.String(), c.wantCode, c.wantOut)
		}
	}
}
