package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/pki"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

// developer is a tenant of the virtual cluster: a kubeconfig of their own
// (a client certificate of the cluster's CA, user "dev" of group
// "developers"), bound to the built-in edit role in one namespace. Not the
// admin's.
type developer struct {
	kubeconfig, kubectl, ns string
}

func newDeveloper(t *testing.T, ctx context.Context, ns string) *developer {
	t.Helper()
	kubectl, err := localkube.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := w.virtual.PKI.ClientCA.Issue(pki.CertRequest{CommonName: "dev", Organizations: []string{"developers"}})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := pki.Kubeconfig(w.virtual.Config.Host, w.virtual.PKI.ServerCA.CertPEM, cert)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dev.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	create(t, ctx, w.virtualC, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "developers-edit", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "developers"}},
	})
	return &developer{kubeconfig: path, kubectl: kubectl, ns: ns}
}

// hostAdmin is kubectl as the host's admin in the host namespace: what a
// story compares the virtual cluster's answers with.
func hostAdmin(t *testing.T) *developer {
	t.Helper()
	kubectl, err := localkube.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	return &developer{kubeconfig: w.host.KubeconfigPath, kubectl: kubectl, ns: hostNamespace}
}

// cmd is kubectl as the tenant, in their namespace.
func (tn *developer) cmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, tn.kubectl, append([]string{"--kubeconfig=" + tn.kubeconfig, "--namespace=" + tn.ns}, args...)...)
}

// run runs kubectl to the end: its output, error output and exit code.
func (tn *developer) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c := tn.cmd(ctx, args...)
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	err := c.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// must runs kubectl and fails t unless it succeeds.
func (tn *developer) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := tn.run(t, "", args...)
	if code != 0 {
		t.Fatalf("kubectl %s: exit %d: %s%s\nsyncer log:\n%s", strings.Join(args, " "), code, out, errOut, w.syncer.tail())
	}
	return out
}

// runningPod creates a virtual pod with containers app and sidecar and
// waits until it runs; it returns its host twin's name.
func runningPod(t testing.TB, ctx context.Context, ns, name string) string {
	t.Helper()
	create(t, ctx, w.virtualC, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			{Name: "sidecar", Image: "sidecar"},
		}},
	})
	testkit.Eventually(t, 60*time.Second, "pod "+name+" Running in the virtual cluster", func() (bool, string) {
		p := &corev1.Pod{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return false, err.Error()
		}
		return p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "", string(p.Status.Phase) + " on " + p.Spec.NodeName
	})
	testkit.Eventually(t, 30*time.Second, "the node of "+name+" advertises the syncer's kubelet API", func() (bool, string) {
		p := &corev1.Pod{}
		n := &corev1.Node{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return false, err.Error()
		}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Name: p.Spec.NodeName}, n); err != nil {
			return false, err.Error()
		}
		_, port, _ := net.SplitHostPort(w.kubeletAddr)
		got := fmt.Sprint(n.Status.DaemonEndpoints.KubeletEndpoint.Port)
		return got == port && len(n.Status.Addresses) > 0 && n.Status.Addresses[0].Address == "127.0.0.1",
			fmt.Sprintf("port %s, addresses %v", got, n.Status.Addresses)
	})
	return w.names.HostName(ns, name)
}

// kwok says, per host pod, what its kubelet API shows: which file is each
// container's log, where exec runs a local command, which local listener a
// forwarded port reaches.
func kwokObject(t testing.TB, ctx context.Context, kind, hostPod string, spec map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": kind,
		"metadata": map[string]any{"name": hostPod, "namespace": hostNamespace},
		"spec":     spec,
	}}
	if err := w.hostC.Create(ctx, u); err != nil {
		t.Fatalf("creating kwok %s for %s: %v", kind, hostPod, err)
	}
}

// criLog writes log lines in the CRI format the kubelet reads.
type criLog struct {
	t    testing.TB
	path string
}

func newCRILog(t testing.TB, name string) *criLog {
	l := &criLog{t: t, path: filepath.Join(t.TempDir(), name+".log")}
	if err := os.WriteFile(l.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *criLog) write(at time.Time, lines ...string) {
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		l.t.Fatal(err)
	}
	defer f.Close()
	for _, line := range lines {
		if _, err := fmt.Fprintf(f, "%s stdout F %s\n", at.UTC().Format(time.RFC3339Nano), line); err != nil {
			l.t.Fatal(err)
		}
	}
}

// hostStreamingCalls counts the host API's requests for pod logs, exec,
// attach and port-forward: what refused requests must never add to.
func hostStreamingCalls(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	counts, err := w.host.RequestCounts(ctx, func(l map[string]string) (string, bool) {
		switch l["subresource"] {
		case "log", "exec", "attach", "portforward":
			return "streaming", l["resource"] == "pods"
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts["streaming"]
}
