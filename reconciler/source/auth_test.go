package source

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// SSH without known_hosts is refused, from a Secret and when opening; the
// host key check is never skipped.
func TestSSHNeedsKnownHosts(t *testing.T) {
	key := testKey(t)
	if _, err := AuthFromSecret(map[string][]byte{"identity": key}); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("secret without known_hosts: got %v, want an error naming known_hosts", err)
	}
	_, err := Open(Options{URL: "ssh://git@example.test/fleet.git", CacheDir: t.TempDir(), Auth: &Auth{SSHIdentity: key}})
	if err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Fatalf("open ssh without known_hosts: got %v", err)
	}
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"))
	hosts := []byte("example.test " + string(ssh.MarshalAuthorizedKey(pub)))
	auth, err := AuthFromSecret(map[string][]byte{"identity": key, "known_hosts": hosts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{URL: "ssh://git@example.test/fleet.git", CacheDir: t.TempDir(), Auth: auth}); err != nil {
		t.Fatalf("open ssh with key and known_hosts: %v", err)
	}
	if s := auth.String(); strings.Contains(s, "PRIVATE") {
		t.Fatalf("String shows the key: %s", s)
	}
}

// Basic auth and bearer tokens come from the Flux key names; both at once is
// a mistake worth naming.
func TestHTTPAuthFromSecret(t *testing.T) {
	a, err := AuthFromSecret(map[string][]byte{"username": []byte("u"), "password": []byte("p")})
	if err != nil || a.Username != "u" || a.Password != "p" {
		t.Fatalf("basic: %+v %v", a, err)
	}
	if _, err := AuthFromSecret(map[string][]byte{"bearerToken": []byte("t"), "password": []byte("p")}); err == nil {
		t.Fatal("bearer token with password accepted")
	}
	if _, err := Open(Options{URL: "https://example.test/fleet.git", CacheDir: t.TempDir(), Auth: &Auth{SSHIdentity: testKey(t)}}); err == nil {
		t.Fatal("ssh key for an https URL accepted")
	}
}

// A refused or missing credential is said once, with what to check, and
// stays recognisable to errors.Is.
func TestRemoteErrorsSayWhatWentWrongOnce(t *testing.T) {
	r := &Repository{url: "https://user:hunter2@git.example.com/fleet.git"}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{transport.ErrAuthenticationRequired, "source: https://git.example.com/fleet.git: fetch: authentication required (check the Fleet's secretRef)"},
		{fmt.Errorf("%w: realm closed", transport.ErrAuthorizationFailed), "source: https://git.example.com/fleet.git: fetch: credentials refused: realm closed"},
		{transport.ErrRepositoryNotFound, "source: https://git.example.com/fleet.git: fetch: repository not found"},
	} {
		got := r.remoteError("fetch", tc.err)
		if got.Error() != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%q no longer is %v", got, tc.err)
		}
	}
}
