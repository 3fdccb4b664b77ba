package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	streamserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// relay makes the host calls, with the syncer's host credentials.
type relay struct {
	host       kubernetes.Interface
	hostConfig *rest.Config
	log        logr.Logger
}

// remoteCommand serves exec and attach the way a kubelet does (SPDY or
// WebSocket, whichever the API server speaks, with the kubelet's own stream
// helpers) and runs the session against the host twin's pods/exec or
// pods/attach (WebSocket first, SPDY if the host does not upgrade, as kubectl
// does). The command's exit code comes back as the kubelet's would.
func (r *relay) remoteCommand(w http.ResponseWriter, req *http.Request, p *target) {
	opts, err := streamserver.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	session := &hostSession{relay: r, target: p}
	if strings.HasPrefix(req.URL.Path, "/attach/") {
		r.log.Info("attach", "namespace", p.Namespace, "pod", p.Name, "container", p.container, "tty", opts.TTY, "stdin", opts.Stdin)
		streamserver.ServeAttach(w, req, session, p.HostName, "", p.container, opts,
			streamIdleTimeout, streamCreationTimeout, streamserver.SupportedStreamingProtocols)
		return
	}
	command := req.URL.Query()[corev1.ExecCommandParam]
	// The command is the tenant's business (it may carry secrets): only its length is logged.
	r.log.Info("exec", "namespace", p.Namespace, "pod", p.Name, "container", p.container, "args", len(command), "tty", opts.TTY, "stdin", opts.Stdin)
	streamserver.ServeExec(w, req, session, p.HostName, "", p.container, command, opts,
		streamIdleTimeout, streamCreationTimeout, streamserver.SupportedStreamingProtocols)
}

// hostSession is one exec or attach on the host twin. It is the kubelet
// stream helpers' Executor and Attacher.
type hostSession struct {
	*relay
	*target
}

// ExecInContainer runs cmd in the host twin's container.
func (h *hostSession) ExecInContainer(ctx context.Context, _, _, container string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan streamserver.TerminalSize, _ time.Duration) error {
	u := h.host.CoreV1().RESTClient().Post().Namespace(h.HostNamespace).Resource("pods").Name(h.HostName).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container, Command: cmd, Stdin: in != nil, Stdout: out != nil, Stderr: errOut != nil, TTY: tty,
		}, scheme.ParameterCodec).URL()
	return h.stream(ctx, u, in, out, errOut, tty, resize)
}

// AttachContainer attaches to the host twin's container.
func (h *hostSession) AttachContainer(ctx context.Context, _, _, container string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan streamserver.TerminalSize) error {
	u := h.host.CoreV1().RESTClient().Post().Namespace(h.HostNamespace).Resource("pods").Name(h.HostName).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{
			Container: container, Stdin: in != nil, Stdout: out != nil, Stderr: errOut != nil, TTY: tty,
		}, scheme.ParameterCodec).URL()
	return h.stream(ctx, u, in, out, errOut, tty, resize)
}

func (h *hostSession) stream(ctx context.Context, u *url.URL, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan streamserver.TerminalSize) error {
	executor, err := h.executor(u)
	if err != nil {
		return err
	}
	opts := remotecommand.StreamOptions{Tty: tty}
	// Typed nils must not reach the executor: it would open streams for them.
	if in != nil {
		opts.Stdin = in
	}
	if out != nil {
		opts.Stdout = out
	}
	if errOut != nil {
		opts.Stderr = errOut
	}
	if resize != nil {
		opts.TerminalSizeQueue = sizes(resize)
	}
	err = executor.StreamWithContext(ctx, opts)
	var exit utilexec.CodeExitError
	if errors.As(err, &exit) {
		return exit // the stream helper reports it as the command's exit code
	}
	if err != nil {
		h.log.Info("host stream ended with an error", append([]any{"namespace", h.Namespace, "pod", h.Name}, hostFailure(err)...)...)
		return fmt.Errorf("%s%w", onTheHost, err)
	}
	return nil
}

// hostFailure describes a failed host stream for the log: the host's
// status reason and code only when it answered with a status, since its
// message may quote the command line (kwok's does, a kubelet's names the
// executable); a transport error as it is.
func hostFailure(err error) []any {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return []any{"reason", status.Status().Reason, "code", status.Status().Code}
	}
	return []any{"error", err.Error()}
}

// executor speaks WebSocket to the host API server and falls back to SPDY,
// exactly as kubectl does.
func (h *hostSession) executor(u *url.URL) (remotecommand.Executor, error) {
	spdy, err := remotecommand.NewSPDYExecutor(h.hostConfig, http.MethodPost, u)
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(h.hostConfig, http.MethodGet, u.String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// sizes hands terminal resizes from the API server on to the host.
type sizes <-chan streamserver.TerminalSize

func (s sizes) Next() *remotecommand.TerminalSize {
	size, ok := <-s
	if !ok {
		return nil
	}
	return &remotecommand.TerminalSize{Width: size.Width, Height: size.Height}
}
