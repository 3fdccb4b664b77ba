package gitserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHServer serves the bare repositories under a root directory over SSH,
// running the real git-upload-pack and git-receive-pack for each request.
// It accepts exactly one client key.
type SSHServer struct {
	// Addr is host:port.
	Addr string
	// KnownHosts is a known_hosts line for this server's host key.
	KnownHosts []byte
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey

	root string
	ln   net.Listener
	cfg  *ssh.ServerConfig
	wg   sync.WaitGroup
}

// NewSSHKey returns a fresh ed25519 private key in OpenSSH PEM form and its
// public key, for a client.
func NewSSHKey(t testing.TB) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemEncode(block), sshPub
}

// StartSSH serves root over SSH on 127.0.0.1 until the test ends, letting
// in the holder of clientKey only.
func StartSSH(t testing.TB, root string, clientKey ssh.PublicKey) *SSHServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	want := clientKey.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(want) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{
		Addr:       ln.Addr().String(),
		HostKey:    signer.PublicKey(),
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, signer.PublicKey()) + "\n"),
		root:       root,
		ln:         ln,
		cfg:        cfg,
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

// URL returns the ssh:// URL of the repository named name.
func (s *SSHServer) URL(name string) string {
	return "ssh://git@" + s.Addr + "/" + name + ".git"
}

func (s *SSHServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

func (s *SSHServer) handle(conn net.Conn) {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ch, requests)
	}
}

func (s *SSHServer) session(ch ssh.Channel, requests <-chan *ssh.Request) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil)
			continue
		}
		if len(req.Payload) < 4 {
			_ = req.Reply(false, nil)
			return
		}
		n := binary.BigEndian.Uint32(req.Payload)
		command := string(req.Payload[4 : 4+n])
		cmd, err := s.gitCommand(command)
		if err != nil {
			_ = req.Reply(false, nil)
			fmt.Fprintln(ch.Stderr(), err)
			return
		}
		_ = req.Reply(true, nil)
		cmd.Stdin = ch
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		status := uint32(0)
		if err := cmd.Run(); err != nil {
			status = 1
		}
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}

// gitCommand maps "git-upload-pack '/name.git'" to the program in root.
func (s *SSHServer) gitCommand(command string) (*exec.Cmd, error) {
	program, arg, ok := strings.Cut(command, " ")
	if !ok || (program != "git-upload-pack" && program != "git-receive-pack") {
		return nil, fmt.Errorf("unsupported command %q", command)
	}
	rel := strings.Trim(arg, "'\"")
	rel = strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	if rel == "" || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("bad repository path %q", arg)
	}
	cmd := exec.Command("git", strings.TrimPrefix(program, "git-"), filepath.Join(s.root, rel))
	cmd.Env = append(cmd.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	return cmd, nil
}
