// Package kubelet serves the kubelet API of the virtual nodes the syncer
// keeps, so that kubectl logs, exec, attach, port-forward and cp work in a
// virtual cluster: the virtual API server calls it as it would call a node's
// kubelet, and it relays each call to the host twin's pods/log, pods/exec,
// pods/attach or pods/portforward on the host API server, with the syncer's
// own host credentials, streaming both ways.
//
// It must never answer anyone but the virtual API server (one client
// certificate, issued by the cluster's client CA), never reach a host pod
// that is not the synced twin of a pod of this virtual cluster, never call
// the host before both checks pass, and never log a credential or a
// command line.
package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/warren-dev/warren/syncer/translate"
)

// The kubelet's own defaults for streaming sessions.
const (
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = 30 * time.Second
	shutdownGrace         = 5 * time.Second
)

// Server is the kubelet API of the virtual nodes.
type Server struct {
	// Address is the IP:port to listen on; the virtual nodes advertise it.
	Address string
	// TLSCertFile and TLSKeyFile are the serving pair (server CA).
	TLSCertFile, TLSKeyFile string
	// ClientCAFile is the cluster's client CA; ClientCertFile the virtual
	// API server's kubelet client certificate, the only one accepted.
	ClientCAFile, ClientCertFile string

	// Virtual reads virtual pods (the manager's cache).
	Virtual client.Reader
	// Host reads host pods of this cluster (the host cache).
	Host client.Reader
	// HostConfig is the syncer's host credentials; relayed calls use them.
	HostConfig *rest.Config
	Names      translate.Translator
	Log        logr.Logger
}

var _ manager.LeaderElectionRunnable = &Server{}

// NeedLeaderElection is false: a standby replica answers too, it writes nothing.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends; then it ends every open stream (a log
// followed ends like a finished one) and returns.
func (s *Server) Start(ctx context.Context) error {
	h, err := s.handler()
	if err != nil {
		return err
	}
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.Address)
	if err != nil {
		return fmt.Errorf("kubelet API: listening on %s: %w", s.Address, err)
	}
	// Streams run on this context: cancelling it ends them, which Shutdown
	// alone would not (upgraded connections are not the server's any more).
	streams, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return streams },
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	s.Log.Info("serving the kubelet API of the virtual nodes", "address", s.Address)
	select {
	case err := <-done:
		return fmt.Errorf("kubelet API: %w", err)
	case <-ctx.Done():
	}
	cancel()
	shutdown, stop := context.WithTimeout(context.Background(), shutdownGrace)
	defer stop()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kubelet API: shutting down: %w", err)
	}
	return nil
}

// handler is the authenticated router of the kubelet API paths the API
// server calls; every other path is 404.
func (s *Server) handler() (http.Handler, error) {
	auth, err := newAuthenticator(s.ClientCAFile, s.ClientCertFile)
	if err != nil {
		return nil, err
	}
	host, err := kubernetes.NewForConfig(s.HostConfig)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: host client: %w", err)
	}
	r := &relay{host: host, hostConfig: s.HostConfig, log: s.Log}
	mux := http.NewServeMux()
	mux.Handle("GET /containerLogs/{namespace}/{pod}/{container}", s.forPod(r.logs))
	for _, prefix := range []string{"/exec/", "/attach/"} {
		mux.Handle(prefix+"{namespace}/{pod}/{container}", s.forPod(r.remoteCommand))
		mux.Handle(prefix+"{namespace}/{pod}/{uid}/{container}", s.forPod(r.remoteCommand))
	}
	mux.Handle("/portForward/{namespace}/{pod}", s.forPod(r.portForward))
	mux.Handle("/portForward/{namespace}/{pod}/{uid}", s.forPod(r.portForward))
	return auth.wrap(s.Log, mux), nil
}

// tlsConfig serves the kubelet certificate and asks for (but does not
// itself demand) a client certificate, so that a request without one gets
// a 401 and one with the wrong one a 403 rather than a failed handshake.
func (s *Server) tlsConfig() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: serving certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequestClientCert,
		// SPDY and WebSocket upgrades need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// podHandler serves a request for one synced pod.
type podHandler func(w http.ResponseWriter, r *http.Request, p *target)

// forPod resolves the pod a request names to its host twin, or answers 404
// without anything reaching the host.
func (s *Server) forPod(next podHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("pod")
		p, err := s.resolve(r.Context(), ns, name, r.PathValue("uid"))
		if err != nil {
			s.Log.Info("refused: not a synced pod of this cluster", "namespace", ns, "pod", name, "path", r.URL.Path, "reason", err.Error(), "status", http.StatusNotFound)
			http.Error(w, fmt.Sprintf("pod %q not found in namespace %q", name, ns), http.StatusNotFound)
			return
		}
		p.container = r.PathValue("container")
		next(w, r, p)
	})
}
