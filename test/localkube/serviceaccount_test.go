package localkube_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/test/localkube"
)

// The plane's API server and controller-manager are given the bundle's
// service-account key exactly as a rendered k8s control plane is (the
// private key as --service-account-key-file, --service-account-signing-key-file
// and the controller-manager's --service-account-private-key-file). A new
// bundle's ECDSA P-256 key must start both and sign tokens the API server
// accepts; an RSA key of a cluster made before the switch must go on working.
func TestTheAPIServerSignsAndAcceptsTokensWithTheBundlesKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes")
	}
	t.Run("ECDSA P-256, a new cluster's key", func(t *testing.T) {
		bundle, err := pki.Generate("ec")
		if err != nil {
			t.Fatal(err)
		}
		// The controller-manager reads the key too: the plane waits for it
		// to make the default ServiceAccount, so it started with it.
		plane := localkube.ForTest(t, localkube.Options{PKI: bundle, ControllerManager: true})
		tokenIsSignedAndAccepted(t, plane.Config, "ES256")
	})
	t.Run("RSA-2048, a cluster made before the switch", func(t *testing.T) {
		bundle, err := pki.Generate("rsa")
		if err != nil {
			t.Fatal(err)
		}
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		bundle.ServiceAccountKey = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		plane := localkube.ForTest(t, localkube.Options{PKI: bundle, ControllerManager: true})
		tokenIsSignedAndAccepted(t, plane.Config, "RS256")
	})
}

// tokenIsSignedAndAccepted asks the API server for a token of the default
// ServiceAccount, checks the algorithm it was signed with, and calls the
// API server with it.
func tokenIsSignedAndAccepted(t *testing.T, admin *rest.Config, wantAlg string) {
	t.Helper()
	ctx := t.Context()
	client := kubernetes.NewForConfigOrDie(admin)
	tr, err := client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token: %v", err)
	}
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(tr.Status.Token, ".")[0])
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("token header: %v", err)
	}
	if h.Alg != wantAlg {
		t.Fatalf("the token is signed %s, want %s", h.Alg, wantAlg)
	}
	asSA := rest.AnonymousClientConfig(admin)
	asSA.BearerToken = tr.Status.Token
	review, err := kubernetes.NewForConfigOrDie(asSA).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the API server refused its own %s token: %v", wantAlg, err)
	}
	if got := review.Status.UserInfo.Username; got != "system:serviceaccount:default:default" {
		t.Fatalf("the token authenticates as %q", got)
	}
}
