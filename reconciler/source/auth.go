package source

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Auth holds the credentials for one remote. Its String never shows them.
type Auth struct {
	// Username and Password are HTTP basic auth; a personal access token
	// goes in Password.
	Username string
	Password string
	// BearerToken is sent as an HTTP Authorization: Bearer header.
	BearerToken string
	// SSHIdentity is an SSH private key (PEM or OpenSSH format), with
	// SSHPassphrase when it is encrypted.
	SSHIdentity   []byte
	SSHPassphrase string
	// KnownHosts are the remote's accepted host keys in known_hosts format.
	// SSH without them is refused: the host key is always checked.
	KnownHosts []byte
	// CABundle are extra PEM certificates to trust for an https remote
	// (a private CA); the system's roots are trusted too.
	CABundle []byte
}

// String describes which kind of credentials these are, never their value.
func (a *Auth) String() string {
	switch {
	case a == nil:
		return "no credentials"
	case len(a.SSHIdentity) > 0:
		return "ssh key"
	case a.BearerToken != "":
		return "bearer token"
	case a.Username != "" || a.Password != "":
		return "basic auth"
	}
	return "no credentials"
}

// Secret data keys AuthFromSecret reads (the names Flux's GitRepository uses).
const (
	SecretUsername    = "username"
	SecretPassword    = "password"
	SecretBearerToken = "bearerToken"
	SecretIdentity    = "identity"
	SecretKnownHosts  = "known_hosts"
	SecretCA          = "ca.crt"
)

// AuthFromSecret reads credentials from a Secret's data. With an `identity`
// it is SSH and `known_hosts` is required (`password` is then the key's
// passphrase); otherwise `username`/`password` or `bearerToken` for HTTPS.
func AuthFromSecret(data map[string][]byte) (*Auth, error) {
	a := &Auth{}
	if key := data[SecretIdentity]; len(key) > 0 {
		a.SSHIdentity = key
		a.SSHPassphrase = string(data[SecretPassword])
		a.KnownHosts = data[SecretKnownHosts]
		if len(a.KnownHosts) == 0 {
			return nil, fmt.Errorf("secret has %q but no %q: the SSH host key must be known", SecretIdentity, SecretKnownHosts)
		}
		return a, nil
	}
	a.CABundle = data[SecretCA]
	a.Username = string(data[SecretUsername])
	a.Password = string(data[SecretPassword])
	a.BearerToken = string(data[SecretBearerToken])
	if a.BearerToken != "" && (a.Username != "" || a.Password != "") {
		return nil, fmt.Errorf("secret has both %q and %q/%q; keep one", SecretBearerToken, SecretUsername, SecretPassword)
	}
	return a, nil
}

func (a *Auth) caBundle() []byte {
	if a == nil {
		return nil
	}
	return a.CABundle
}

// method turns the credentials into go-git's form for remoteURL. For SSH it
// writes the known hosts to knownHostsFile (go-git's host key database reads
// files).
func (a *Auth) method(remoteURL, knownHostsFile string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(remoteURL)
	if err != nil {
		return nil, fmt.Errorf("repository URL: %w", err)
	}
	switch ep.Protocol {
	case "file":
		return nil, nil
	case "http", "https":
		if a == nil {
			return nil, nil
		}
		if len(a.SSHIdentity) > 0 {
			return nil, errors.New("an SSH key was given for an HTTP(S) URL")
		}
		hasCredentials := a.BearerToken != "" || a.Username != "" || a.Password != ""
		if ep.Protocol == "http" && hasCredentials {
			return nil, errors.New("credentials over plain http:// would travel in the clear; use https://")
		}
		if a.BearerToken != "" {
			return &githttp.TokenAuth{Token: a.BearerToken}, nil
		}
		if a.Username != "" || a.Password != "" {
			user := a.Username
			if user == "" {
				user = "git" // token-only: hosts accept any user name with a token
			}
			return &githttp.BasicAuth{Username: user, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		if a == nil || len(a.SSHIdentity) == 0 {
			return nil, errors.New("an ssh:// URL needs an SSH key (secret key \"identity\")")
		}
		if len(a.KnownHosts) == 0 {
			return nil, errors.New("an ssh:// URL needs known_hosts: the host key is always checked")
		}
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, a.SSHIdentity, a.SSHPassphrase)
		if err != nil {
			return nil, fmt.Errorf("SSH key: %w", err)
		}
		if err := os.WriteFile(knownHostsFile, a.KnownHosts, 0o600); err != nil {
			return nil, fmt.Errorf("write known_hosts: %w", err)
		}
		db, err := gitssh.NewKnownHostsDb(knownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
		port := ep.Port
		if port == 0 {
			port = 22
		}
		keys.HostKeyCallback = db.HostKeyCallback()
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, fmt.Sprint(port)))
		return keys, nil
	}
	return nil, fmt.Errorf("unsupported protocol %q in %s", ep.Protocol, redactEndpoint(remoteURL))
}

func redactEndpoint(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		u.User = nil
		return u.String()
	}
	if i := strings.Index(raw, "@"); i >= 0 {
		return raw[i+1:]
	}
	return raw
}
