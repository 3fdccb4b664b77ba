// Command warren-syncer runs beside a virtual cluster's control plane and
// makes its workloads real in one host namespace. See package syncer.
package main

import (
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
)

func main() {
	cfg, err := config.Parse(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-syncer:", err)
		os.Exit(2)
	}
	logger := zap.New(zap.JSONEncoder())
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	if err := syncer.Run(ctrl.SetupSignalHandler(), cfg); err != nil {
		logger.Error(err, "syncer stopped")
		os.Exit(1)
	}
}
