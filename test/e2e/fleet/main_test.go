package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/warren-dev/warren/test/localkube"
)

var (
	// reconcilerBinary is warren-reconciler, built once for the whole run.
	reconcilerBinary string
	// repoRoot is the module's root directory.
	repoRoot string

	sharedOnce  sync.Once
	sharedPlane *localkube.Plane
	sharedErr   error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every story needs a plane and a process
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = root
	bin, err := os.MkdirTemp("", "warren-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	reconcilerBinary = filepath.Join(bin, "warren-reconciler")
	build := exec.Command("go", "build", "-o", reconcilerBinary, "./cmd/warren-reconciler")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building warren-reconciler: %v\n", err)
		return 1
	}
	defer func() {
		if sharedPlane != nil {
			_ = sharedPlane.Stop()
		}
	}()
	return m.Run()
}

// hostNodePorts is the shared host's node-port range: not Kubernetes'
// default, so that the stories see the reconciler learn it.
const hostNodePorts = "30000-31999"

// hostPlane is the host every story shares: a control plane with a
// controller manager (namespace deletion, garbage collection, StatefulSets),
// a scheduler and one kwok fake node (pods are simulated: no container
// runtime), with warren's CRDs installed. It starts on first use, so a
// benchmark-only run does not pay for it. Stories run on it in parallel and
// keep apart by using their own Fleet namespace, cluster names and shard
// (storyShard).
func hostPlane(t testing.TB) *localkube.Plane {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a local control plane and a built reconciler (not in -short mode)")
	}
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p, err := localkube.Start(ctx, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1, NodePortRange: hostNodePorts})
		if err != nil {
			sharedErr = fmt.Errorf("starting the host plane: %w", err)
			return
		}
		sharedPlane = p
		sharedErr = testkit.InstallCRDs(ctx, p.Config)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedPlane
}
