package kubelet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	pfserver "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/streaming/pkg/httpstream"
)

// portForward serves portForward the way a kubelet does (SPDY, or the
// WebSocket protocol, with the kubelet's own helper) and carries each
// forwarded connection over one connection to the host twin's
// pods/portforward, opened on the first and closed with the request.
func (r *relay) portForward(w http.ResponseWriter, req *http.Request, p *target) {
	opts, err := pfserver.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.log.Info("port-forward", "namespace", p.Namespace, "pod", p.Name)
	f := &forwarder{relay: r, target: p, ctx: req.Context()}
	defer f.close()
	pfserver.ServePortForward(w, req, f, p.HostName, "", opts, streamIdleTimeout, streamCreationTimeout, pfserver.SupportedProtocols)
}

// forwarder is the kubelet helper's PortForwarder for one request.
type forwarder struct {
	*relay
	*target
	ctx context.Context

	mu     sync.Mutex
	conn   httpstream.Connection
	nextID atomic.Int64
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		_ = f.conn.Close()
	}
}

// connection is the host connection, dialled on first use (again if the
// host closed it): WebSocket first, SPDY if the host does not upgrade, as
// kubectl port-forward does.
func (f *forwarder) connection() (httpstream.Connection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		select {
		case <-f.conn.CloseChan():
		default:
			return f.conn, nil
		}
	}
	u := f.host.CoreV1().RESTClient().Post().Namespace(f.HostNamespace).Resource("pods").Name(f.HostName).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(f.hostConfig)
	if err != nil {
		return nil, err
	}
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	tunnel, err := portforward.NewSPDYOverWebsocketDialerForStreaming(u, f.hostConfig)
	if err != nil {
		return nil, err
	}
	dialer = portforward.NewFallbackDialerForStreaming(tunnel, dialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	conn, _, err := dialer.Dial(pfserver.ProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("on the host: %w", err)
	}
	f.conn = conn
	// The request ending (the API server hung up, or the syncer stops)
	// ends the host connection and every stream on it.
	go func() {
		select {
		case <-f.ctx.Done():
			_ = conn.Close()
		case <-conn.CloseChan():
		}
	}()
	return conn, nil
}

// PortForward carries one forwarded connection to port of the host twin: an
// error stream and a data stream, as kubectl opens them.
func (f *forwarder) PortForward(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	conn, err := f.connection()
	if err != nil {
		return err
	}
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(int(port)))
	headers.Set(corev1.PortForwardRequestIDHeader, strconv.FormatInt(f.nextID.Add(1), 10))
	errorStream, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("on the host: opening the error stream: %w", err)
	}
	_ = errorStream.Close() // only read
	hostErr := make(chan error, 1)
	go func() {
		msg, err := io.ReadAll(errorStream)
		switch {
		case err != nil:
			hostErr <- fmt.Errorf("on the host: reading the error stream: %w", err)
		case len(msg) > 0:
			hostErr <- fmt.Errorf("on the host: %s", msg)
		}
		close(hostErr)
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return fmt.Errorf("on the host: opening the data stream: %w", err)
	}
	defer conn.RemoveStreams(errorStream, data)
	return pipe(stream, data, hostErr)
}

// pipe copies both ways until the host side is done (or the API server's
// side fails), then reports the host's error, if any.
func pipe(local io.ReadWriter, remote httpstream.Stream, hostErr <-chan error) error {
	remoteDone := make(chan struct{})
	localErr := make(chan error, 1)
	go func() {
		// Host to API server; ends when the pod's side closes.
		_, _ = io.Copy(local, remote)
		close(remoteDone)
	}()
	go func() {
		// API server to host; closing tells the pod nothing more comes.
		_, err := io.Copy(remote, local)
		if err == nil {
			err = remote.Close()
		}
		if err != nil && !errors.Is(err, io.EOF) {
			localErr <- err
			_ = remote.Reset()
		}
	}()
	select {
	case <-remoteDone:
	case err := <-localErr:
		return err
	}
	return <-hostErr
}
