// Package gitserver gives tests real Git repositories: bare repositories made
// and committed to with the git CLI, served over smart HTTP by
// `git http-backend` behind net/http/cgi, over SSH by the real
// git-upload-pack/git-receive-pack behind golang.org/x/crypto/ssh, and
// reachable by file:// too.
//
// It exists for tests only. It never fakes the Git protocol: every fetch and
// push a test makes goes through real git programs.
package gitserver

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"
)

// DefaultBranch is the branch NewRepo starts with.
const DefaultBranch = "main"

// Repo is a bare repository (what remotes fetch from and push to) plus a
// working clone of it that tests commit in.
type Repo struct {
	// Name is the repository's name; the bare repository is <root>/<Name>.git.
	Name string
	// BareDir is the bare repository's directory.
	BareDir string
	// WorkDir is the working clone tests commit in.
	WorkDir string
}

// NewRepo creates an empty bare repository <root>/<name>.git, accepting
// pushes over HTTP and fetches of any commit, and a working clone of it under
// <root>/work/<name> on branch main.
func NewRepo(t testing.TB, root, name string) *Repo {
	t.Helper()
	r := &Repo{
		Name:    name,
		BareDir: filepath.Join(root, name+".git"),
		WorkDir: filepath.Join(root, "work", name),
	}
	testkit.Git(t, "", "init", "--quiet", "--bare", "--initial-branch="+DefaultBranch, r.BareDir)
	testkit.Git(t, r.BareDir, "config", "http.receivepack", "true")
	testkit.Git(t, r.BareDir, "config", "uploadpack.allowAnySHA1InWant", "true")
	testkit.Git(t, r.BareDir, "config", "receive.denyNonFastForwards", "true")
	testkit.Git(t, "", "init", "--quiet", "--initial-branch="+DefaultBranch, r.WorkDir)
	testkit.Git(t, r.WorkDir, "remote", "add", "origin", r.BareDir)
	return r
}

// FileURL is the repository's file:// URL.
func (r *Repo) FileURL() string { return "file://" + r.BareDir }

// Git runs git with args in the working clone and returns its trimmed
// standard output; it fails the test on error.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return testkit.Git(t, r.WorkDir, args...)
}

// CommitFiles writes files (path relative to the repository root → content)
// in the working clone, commits them on the current branch and pushes it.
// It returns the new commit's SHA-1.
func (r *Repo) CommitFiles(t testing.TB, message string, files map[string]string) string {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(r.WorkDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatalf("gitserver: %v", err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatalf("gitserver: %v", err)
		}
		r.Git(t, "add", "--", p)
	}
	return r.commitAndPush(t, message)
}

// RemoveFiles deletes paths (files or folders) in one commit and pushes it.
func (r *Repo) RemoveFiles(t testing.TB, message string, paths ...string) string {
	t.Helper()
	r.Git(t, append([]string{"rm", "-r", "--quiet", "--"}, paths...)...)
	return r.commitAndPush(t, message)
}

func (r *Repo) commitAndPush(t testing.TB, message string) string {
	t.Helper()
	r.Git(t, "commit", "--quiet", "--allow-empty", "-m", message)
	branch := r.Git(t, "rev-parse", "--abbrev-ref", "HEAD")
	r.Git(t, "push", "--quiet", "origin", branch)
	return r.Git(t, "rev-parse", "HEAD")
}

// Tag creates a lightweight tag at the working clone's HEAD and pushes it.
func (r *Repo) Tag(t testing.TB, name string) {
	t.Helper()
	r.Git(t, "tag", name)
	r.Git(t, "push", "--quiet", "origin", "refs/tags/"+name)
}

// Pull brings commits others pushed to the bare repository into the working
// clone (fast-forward only).
func (r *Repo) Pull(t testing.TB) {
	t.Helper()
	branch := r.Git(t, "rev-parse", "--abbrev-ref", "HEAD")
	r.Git(t, "pull", "--quiet", "--ff-only", "origin", branch)
}

// Head returns the SHA-1 a branch points at in the bare repository.
func (r *Repo) Head(t testing.TB, branch string) string {
	t.Helper()
	return testkit.Git(t, r.BareDir, "rev-parse", "refs/heads/"+branch)
}

// Show returns the content of path at rev in the bare repository.
func (r *Repo) Show(t testing.TB, rev, path string) string {
	t.Helper()
	return testkit.Git(t, r.BareDir, "show", rev+":"+path)
}

// Options configure a Server.
type Options struct {
	// Username and Password, when set, are required as HTTP basic auth on
	// every request.
	Username string
	Password string
	// TLS serves https with a fresh self-signed certificate for the
	// server's address; clients trust it through CACertPEM.
	TLS bool
	// Host is the address to listen on; 127.0.0.1 when empty. Pods on a
	// real node reach the host only at the plane's HostAddress, never at
	// its loopback.
	Host string
}

// Server serves every bare repository under a root directory over Git's
// smart HTTP protocol, fetch and push.
type Server struct {
	root    string
	opts    Options
	handler http.Handler

	tlsConfig *tls.Config
	caPEM     []byte

	mu       sync.Mutex
	addr     string
	srv      *http.Server
	requests atomic.Int64
	sent     atomic.Int64
}

// countingWriter counts the bytes of response bodies.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// BytesSent counts the response body bytes served so far.
func (s *Server) BytesSent() int64 { return s.sent.Load() }

// Start serves root at http://127.0.0.1:<port>/ (or opts.Host) until the
// test ends.
func Start(t testing.TB, root string, opts Options) *Server {
	t.Helper()
	execPath := testkit.Git(t, "", "--exec-path")
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
		InheritEnv: []string{"GIT_TRACE_PACKET"}, // set it to a file to see the protocol
	}
	s := &Server{root: root, opts: opts}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.requests.Add(1)
		if opts.Username != "" || opts.Password != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != opts.Username || p != opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="gitserver"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(countingWriter{ResponseWriter: w, n: &s.sent}, req)
	})
	if opts.TLS {
		cert, caPEM, err := selfSignedCert(cmp.Or(opts.Host, "127.0.0.1"))
		if err != nil {
			t.Fatalf("gitserver: %v", err)
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.caPEM = caPEM
	}
	if err := s.listen(net.JoinHostPort(cmp.Or(opts.Host, "127.0.0.1"), "0")); err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// URL returns the HTTP URL of the repository named name.
func (s *Server) URL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme := "http"
	if s.tlsConfig != nil {
		scheme = "https"
	}
	return scheme + "://" + s.addr + "/" + name + ".git"
}

// CACertPEM is the certificate a TLS server presents, for clients to trust;
// nil without TLS.
func (s *Server) CACertPEM() []byte { return s.caPEM }

func selfSignedCert(host string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gitserver"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP(host)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Requests counts the HTTP requests served so far (rejected ones included).
func (s *Server) Requests() int64 { return s.requests.Load() }

// Stop closes the server so its address refuses connections, which is how a
// test makes the remote unreachable. Resume brings it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// Resume serves again on the address the server had before Stop.
func (s *Server) Resume() error {
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.listen(addr)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the port can linger briefly after Close
	}
}

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if s.tlsConfig != nil {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.srv = srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "gitserver: %v\n", err)
		}
	}()
	return nil
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
