package kubelet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/syncer/translate"
)

// fixture is a kubelet API server over fake caches, whose host API is a
// recording HTTP server.
type fixture struct {
	url       string
	bundle    *pki.Bundle
	apiServer tls.Certificate
	roots     *x509.CertPool
	hostCalls atomic.Int32
	hostQuery atomic.Value
	names     translate.Translator
	// client is how the virtual API server calls the kubelet API.
	client *rest.Config
}

func pair(t *testing.T, kp pki.KeyPair) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, virtualPods, hostPods []client.Object) *fixture {
	t.Helper()
	return startWithHost(t, virtualPods, hostPods, nil)
}

// startWithHost is start with the host API's exec answered by hostExec.
func startWithHost(t *testing.T, virtualPods, hostPods []client.Object, hostExec http.Handler) *fixture {
	t.Helper()
	f := &fixture{names: translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}}
	var err error
	if f.bundle, err = pki.Generate("demo"); err != nil {
		t.Fatal(err)
	}
	creds, err := f.bundle.Kubelet([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	f.apiServer = pair(t, creds.APIServerClient)
	serverCA, _ := f.bundle.ServerCA.Certificate()
	f.roots = x509.NewCertPool()
	f.roots.AddCert(serverCA)

	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hostCalls.Add(1)
		f.hostQuery.Store(r.URL.Path + "?" + r.URL.RawQuery)
		if hostExec != nil && strings.HasSuffix(r.URL.Path, "/exec") {
			hostExec.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, "line one\nline two\n")
	}))
	t.Cleanup(host.Close)

	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{
		Address:        addr,
		TLSCertFile:    write(t, dir, "tls.crt", creds.Serving.CertPEM),
		TLSKeyFile:     write(t, dir, "tls.key", creds.Serving.KeyPEM),
		ClientCAFile:   write(t, dir, "ca.crt", f.bundle.ClientCA.CertPEM),
		ClientCertFile: write(t, dir, "client.crt", creds.APIServerClient.CertPEM),
		Virtual:        fake.NewClientBuilder().WithObjects(virtualPods...).Build(),
		Host:           fake.NewClientBuilder().WithObjects(hostPods...).Build(),
		HostConfig:     &rest.Config{Host: host.URL},
		Names:          f.names,
		Log:            logr.Discard(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	f.url = "https://" + addr
	f.client = &rest.Config{Host: f.url, TLSClientConfig: rest.TLSClientConfig{
		CertData: creds.APIServerClient.CertPEM, KeyData: creds.APIServerClient.KeyPEM, CAData: f.bundle.ServerCA.CertPEM,
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kubelet API did not listen: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return f
}

func (f *fixture) get(t *testing.T, path string, certs ...tls.Certificate) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.roots, Certificates: certs}}}
	resp, err := c.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func pods(names translate.Translator, ns, name, uid string, mark func(*corev1.Pod)) (*corev1.Pod, *corev1.Pod) {
	// Every virtual pod has this UID; the twin records uid.
	v := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: "11111111-1111-1111-1111-111111111111"}}
	h := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: names.HostNamespace, Name: names.HostName(ns, name)}}
	h.Spec.NodeName = "kwok-node-0"
	names.Mark(h, translate.Origin{Kind: "Pod", Namespace: ns, Name: name, UID: uid})
	if mark != nil {
		mark(h)
	}
	return v, h
}

// Only the virtual API server's own certificate gets in: none is 401, one
// of another CA or another certificate of the cluster's own client CA 403,
// and nothing of it reaches the host.
func TestOnlyTheVirtualAPIServersCertificateIsAccepted(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	v, h := pods(names, "team", "web", "11111111-1111-1111-1111-111111111111", nil)
	f := start(t, []client.Object{v}, []client.Object{h})
	other, _ := pki.Generate("other")
	foreign, _ := other.Kubelet([]string{"127.0.0.1"})
	sameCA, _ := f.bundle.ClientCA.Issue(pki.CertRequest{CommonName: pki.KubeletClientName})
	path := "/containerLogs/team/web/app"
	for _, c := range []struct {
		what  string
		certs []tls.Certificate
		want  int
	}{
		{"no certificate", nil, http.StatusUnauthorized},
		{"another cluster's API server", []tls.Certificate{pair(t, foreign.APIServerClient)}, http.StatusForbidden},
		{"the same name from the same CA (a CSR a tenant approved)", []tls.Certificate{pair(t, sameCA)}, http.StatusForbidden},
	} {
		if code, body := f.get(t, path, c.certs...); code != c.want {
			t.Errorf("%s: %d %q, want %d", c.what, code, body, c.want)
		}
	}
	if n := f.hostCalls.Load(); n != 0 {
		t.Errorf("%d refused requests reached the host", n)
	}
	if code, body := f.get(t, path+"?tailLines=1", f.apiServer); code != http.StatusOK || body != "line one\nline two\n" {
		t.Fatalf("the API server: %d %q", code, body)
	}
}

// Only the host twin of a synced virtual pod of this cluster is reached,
// with the options the tenant asked for; anything else is 404 and the host
// hears nothing of it.
func TestOnlySyncedPodsOfThisClusterAreReached(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	const uid = "11111111-1111-1111-1111-111111111111"
	synced, syncedHost := pods(names, "team", "web", uid, nil)
	stale, staleHost := pods(names, "team", "old", "22222222-2222-2222-2222-222222222222", nil) // twin of an earlier pod
	otherV, otherHost := pods(names, "team", "theirs", uid, func(h *corev1.Pod) {
		other := translate.Translator{Cluster: "other", HostNamespace: "vc-demo"}
		h.Labels, h.Annotations = nil, nil
		other.Mark(h, translate.Origin{Kind: "Pod", Namespace: "team", Name: "theirs", UID: uid})
	})
	unscheduledV, unscheduledHost := pods(names, "team", "pending", uid, func(h *corev1.Pod) { h.Spec.NodeName = "" })
	notSynced := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "refused", UID: uid}}
	f := start(t,
		[]client.Object{synced, stale, otherV, unscheduledV, notSynced},
		[]client.Object{syncedHost, staleHost, otherHost, unscheduledHost,
			// a host pod in the host namespace that is nobody's twin
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "vc-demo", Name: "demo-0"}}})
	for _, path := range []string{
		"/containerLogs/team/missing/app",
		"/containerLogs/team/refused/app",
		"/containerLogs/team/old/app",
		"/containerLogs/team/theirs/app",
		"/containerLogs/team/pending/app",
		"/containerLogs/vc-demo/demo-0/syncer",
		"/containerLogs/vc-demo/" + names.HostName("team", "web") + "/app",
		"/exec/team/web/22222222-2222-2222-2222-222222222222/app?command=id&output=1",
		"/portForward/team/missing",
		"/stats/summary",
		"/metrics/resource",
		"/runningpods/",
	} {
		if code, body := f.get(t, path, f.apiServer); code != http.StatusNotFound {
			t.Errorf("%s: %d %q, want 404", path, code, body)
		}
	}
	if n := f.hostCalls.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the host", n)
	}
	code, _ := f.get(t, "/containerLogs/team/web/app?follow=true&tailLines=5&sinceSeconds=60&timestamps=true&limitBytes=100&previous=false", f.apiServer)
	got, _ := f.hostQuery.Load().(string)
	if code != http.StatusOK || !strings.HasPrefix(got, "/api/v1/namespaces/vc-demo/pods/"+names.HostName("team", "web")+"/log?") {
		t.Fatalf("%d, host asked for %s", code, got)
	}
	for _, want := range []string{"container=app", "follow=true", "tailLines=5", "sinceSeconds=60", "timestamps=true", "limitBytes=100"} {
		if !strings.Contains(got, want) {
			t.Errorf("host query %s lacks %s", got, want)
		}
	}
	if code, body := f.get(t, "/containerLogs/team/web/app?tailLines=-1", f.apiServer); code != http.StatusBadRequest {
		t.Errorf("a negative tailLines: %d %q", code, body)
	}
}
