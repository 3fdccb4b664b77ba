// Command warren-syncer runs beside a virtual cluster's control plane and
// makes its workloads real in one host namespace. See package syncer.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/warren-dev/warren/syncer/bootstrap"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/kubelet"
	"github.com/warren-dev/warren/syncer/setup"
)

// defaultMemoryLimit is the Go heap's soft limit unless GOMEMLIMIT is set:
// the syncer's live heap is small (about 25 MB at 1,000 pods), and without a
// limit the heap grows to twice its live size between collections.
const defaultMemoryLimit = 48 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if len(os.Args) > 1 && os.Args[1] == "bootstrap-pki" {
		bootstrapPKI(os.Args[2:])
		return
	}
	cfg, err := config.Parse(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-syncer:", err)
		os.Exit(2)
	}
	logger := zap.New(zap.JSONEncoder())
	ctrl.SetLogger(logger)
	// The kubelet stream helpers log the errors they answer with through klog.
	klog.SetLogger(kubelet.RedactHostMessages(logger))
	if err := setup.Run(ctrl.SetupSignalHandler(), cfg); err != nil {
		logger.Error(err, "syncer stopped")
		os.Exit(1)
	}
}

// bootstrapPKI is the k8s distro's init container (see package bootstrap).
func bootstrapPKI(args []string) {
	o, err := bootstrap.Parse(args)
	if err == nil {
		err = bootstrap.Run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-syncer bootstrap-pki:", err)
		os.Exit(1)
	}
}
