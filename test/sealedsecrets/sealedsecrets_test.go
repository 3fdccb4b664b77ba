package sealedsecrets_test

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	ssv1alpha1 "github.com/bitnami-labs/sealed-secrets/pkg/apis/sealedsecrets/v1alpha1"
	"github.com/bitnami-labs/sealed-secrets/pkg/kubeseal"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/sealedsecrets"
)

var sealedSecretsGVR = schema.GroupVersionResource{Group: "bitnami.com", Version: "v1alpha1", Resource: "sealedsecrets"}

func TestASealedSecretAppliedToThePlaneIsUnsealed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and the sealed-secrets controller")
	}
	plane := localkube.ForTest(t, localkube.Options{})
	controller := sealedsecrets.ForTest(t, plane, sealedsecrets.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := kubernetes.NewForConfigOrDie(plane.Config)

	// The certificate a user would get with `kubeseal --fetch-cert`, through
	// the API server's service proxy.
	viaProxy, err := client.CoreV1().Services(controller.Namespace).
		ProxyGet("http", controller.ServiceName, "http", "/v1/cert.pem", nil).DoRaw(ctx)
	if err != nil {
		t.Fatalf("fetching the certificate through the service proxy: %v", err)
	}
	direct, err := controller.CertificatePEM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaProxy, direct) {
		t.Fatal("the service proxy serves another certificate than the controller")
	}
	pub, err := kubeseal.ParseKey(bytes.NewReader(viaProxy))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "db"},
		Data:       map[string][]byte{"password": []byte("correct horse battery staple")},
	}
	sealed, err := ssv1alpha1.NewSealedSecret(serializer.NewCodecFactory(scheme.Scheme), pub, secret)
	if err != nil {
		t.Fatal(err)
	}
	sealed.TypeMeta = metav1.TypeMeta{APIVersion: "bitnami.com/v1alpha1", Kind: "SealedSecret"}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sealed)
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(plane.Config)
	if _, err := dyn.Resource(sealedSecretsGVR).Namespace("team-a").Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("applying the SealedSecret: %v", err)
	}

	var got *corev1.Secret
	for got == nil {
		if s, err := client.CoreV1().Secrets("team-a").Get(ctx, "db", metav1.GetOptions{}); err == nil {
			got = s
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the controller did not unseal the Secret; its log is %s", controller.LogPath)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if string(got.Data["password"]) != "correct horse battery staple" {
		t.Fatalf("unsealed Secret holds %d bytes, not the sealed value", len(got.Data["password"]))
	}

	pid := controller.PID()
	if err := controller.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("controller process %d still runs after Stop", pid)
	}
}
