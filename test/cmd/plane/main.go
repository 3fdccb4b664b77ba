// Command plane starts a local control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok fake nodes), prints how to
// reach it, and runs until interrupted. It is `make plane`: a debugging aid.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/warren-dev/warren/internal/localplane"
)

func main() {
	nodes := flag.Int("nodes", 1, "fake nodes run by kwok")
	port := flag.Int("port", 0, "the API server's port (a free one when 0)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "starting a local control plane...")
	plane, err := localplane.Start(ctx, localplane.Options{ControllerManager: true, Scheduler: true, Nodes: *nodes, APIServerPort: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "plane:", err)
		os.Exit(1)
	}
	fmt.Printf("API server:  %s\nkubeconfig:  %s\n\nexport KUBECONFIG=%s\n\n", plane.Config.Host, plane.KubeconfigPath, plane.KubeconfigPath)
	fmt.Println("Pods are run by kwok fake nodes (there is no container runtime here). Ctrl-C stops the plane and removes its data.")
	<-ctx.Done()
	if err := plane.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "plane:", err)
		os.Exit(1)
	}
}
