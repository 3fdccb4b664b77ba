// Package flux gives tests the real Flux source-controller and
// kustomize-controller, built from their own Go modules by
// test/tools/build.sh, as local processes against a local plane: ForTest
// installs the CRDs those modules ship, gives each controller the
// ServiceAccount and rights Flux's own install gives it, and stops both when
// the test ends.
//
// It never builds, downloads or mocks a controller, and must never be
// imported by non-test code.
package flux

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/internal/localplane"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

const (
	// Namespace is where Flux's own objects live, as `flux install` has it.
	Namespace = "flux-system"
	// SourceController and KustomizeController name the controllers'
	// binaries, ServiceAccounts and field managers.
	SourceController    = "source-controller"
	KustomizeController = "kustomize-controller"
)

// User is the name a controller's requests carry on the API server.
func User(controller string) string {
	return "system:serviceaccount:" + Namespace + ":" + controller
}

// Controllers are the two running controllers.
type Controllers struct {
	// Source and Kustomize are the processes; their logs are in the plane's
	// data dir.
	Source, Kustomize *localplane.Process
	// ArtifactURL is where source-controller serves artifacts (loopback).
	ArtifactURL string
}

// ForTest starts both controllers on plane for t, watching all namespaces,
// and stops them when t ends; it fails t if either does not come up.
func ForTest(t testing.TB, plane *localkube.Plane) *Controllers {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := start(ctx, plane)
	if err != nil {
		t.Fatalf("starting Flux: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Stop ends both controllers (the plane would also end them with itself).
func (c *Controllers) Stop() {
	for _, p := range []*localplane.Process{c.Kustomize, c.Source} {
		if p != nil {
			p.Stop()
		}
	}
}

func start(ctx context.Context, plane *localkube.Plane) (_ *Controllers, err error) {
	tools, err := localplane.ToolsDir("")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{SourceController, KustomizeController, SourceController + "-crds.yaml", KustomizeController + "-crds.yaml"} {
		if _, err := os.Stat(filepath.Join(tools, f)); err != nil {
			return nil, fmt.Errorf("%s is missing from the tools cache %s: run `make tools` to build it", f, tools)
		}
	}
	for _, crds := range []string{SourceController + "-crds.yaml", KustomizeController + "-crds.yaml"} {
		if err := localplane.InstallCRDFile(ctx, plane.Config, filepath.Join(tools, crds)); err != nil {
			return nil, fmt.Errorf("installing Flux's CRDs: %w", err)
		}
	}
	kube, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		return nil, err
	}
	if err := grantRights(ctx, kube); err != nil {
		return nil, err
	}
	dir := filepath.Join(plane.Dir, "flux")
	// source-controller refuses a storage path that does not exist.
	if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o700); err != nil {
		return nil, err
	}
	c := &Controllers{}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	storage, err := testkit.LoopbackAddr()
	if err != nil {
		return nil, err
	}
	c.ArtifactURL = "http://" + storage
	if c.Source, err = run(ctx, plane, kube, tools, dir, SourceController,
		"--storage-path="+filepath.Join(dir, "artifacts"),
		"--storage-addr="+storage, "--storage-adv-addr="+storage,
		"--artifact-retention-records=2"); err != nil {
		return nil, err
	}
	if c.Kustomize, err = run(ctx, plane, kube, tools, dir, KustomizeController); err != nil {
		return nil, err
	}
	return c, nil
}

// run starts one controller as its ServiceAccount, with its metrics and
// health endpoints on free loopback ports and leader election off, and
// waits until it reports ready.
func run(ctx context.Context, plane *localkube.Plane, kube kubernetes.Interface, tools, dir, name string, extra ...string) (*localplane.Process, error) {
	kubeconfig, err := writeKubeconfig(ctx, plane, kube, dir, name)
	if err != nil {
		return nil, err
	}
	metrics, err := testkit.LoopbackAddr()
	if err != nil {
		return nil, err
	}
	health, err := testkit.LoopbackAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--watch-all-namespaces=true",
		"--metrics-addr=" + metrics,
		"--health-addr=" + health,
		"--enable-leader-election=false",
		"--log-encoding=json",
		"--log-level=info",
	}, extra...)
	env := append(environment(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE="+Namespace)
	proc, err := plane.StartProcess(name, filepath.Join(tools, name), env, args...)
	if err != nil {
		return nil, err
	}
	ready := func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+health+"/readyz", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}
	if err := proc.WaitFor(ctx, 60*time.Second, "did not report ready", ready); err != nil {
		proc.Stop()
		return nil, err
	}
	return proc, nil
}

// writeKubeconfig writes a kubeconfig with a token of the controller's
// ServiceAccount, the identity a pod of Flux's Deployment would have.
func writeKubeconfig(ctx context.Context, plane *localkube.Plane, kube kubernetes.Interface, dir, name string) (string, error) {
	token, err := kube.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(24 * 60 * 60))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token for %s: %w", name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["plane"] = &clientcmdapi.Cluster{Server: plane.Config.Host, CertificateAuthorityData: plane.PKI.ServerCA.CertPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "plane", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("writing %s's kubeconfig: %w", name, err)
	}
	return path, nil
}

// environment is this process's environment without what would point a
// controller elsewhere behind the caller's back.
func environment() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "KUBERNETES_") || strings.HasPrefix(kv, "RUNTIME_NAMESPACE=") ||
			strings.HasPrefix(kv, "SOURCE_CONTROLLER_") || strings.HasPrefix(kv, "STORAGE_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
