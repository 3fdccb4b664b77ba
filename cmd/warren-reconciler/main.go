// Command warren-reconciler reconciles Fleets: it polls each Fleet's Git
// repository and makes the host hold exactly the virtual clusters it admits.
package main

import (
	goflag "flag"
	"fmt"
	"os"

	"github.com/KimMachineGun/automemlimit/memlimit"
	fluxclient "github.com/fluxcd/pkg/runtime/client"
	"github.com/fluxcd/pkg/runtime/logger"
	flag "github.com/spf13/pflag"
	// The image is the static binary alone, as ko builds it, with no CA
	// bundle: without these roots no Fleet could be fetched over https
	// from a public Git host. A CA bundle on the machine still wins.
	_ "golang.org/x/crypto/x509roots/fallback"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/warren-dev/warren/reconciler/controller"
)

// version is set at build time.
var version = "dev"

// memoryLimitRatio is the share of its container's memory limit the Go
// heap may grow to before collecting harder (unless GOMEMLIMIT is set): a
// soft limit taken from the limit the reconciler really has, as a fixed one
// would either waste memory on a large fleet's host or, below the live heap
// of thousands of clusters, spend a core on collections. Without a cgroup
// limit there is none, and the heap grows to twice its live size.
const memoryLimitRatio = 0.9

func main() {
	if _, err := memlimit.Set(memlimit.WithRatio(memoryLimitRatio), memlimit.WithProvider(memlimit.FromCgroup)); err != nil {
		fmt.Fprintln(os.Stderr, "warren-reconciler: no Go memory limit from the cgroup:", err)
	}
	cfg := controller.Config{Version: version, LeaderElection: controller.DefaultLeaderElection()}
	var (
		logOptions    logger.Options
		clientOptions fluxclient.Options
	)
	flag.StringVar(&cfg.CacheDir, "cache-dir", "/tmp/warren", "where each Fleet's Git cache lives")
	flag.StringVar(&cfg.ServiceCIDR, "service-cidr", "", "the host's service CIDR; detected from the API server when empty")
	flag.StringVar(&cfg.NodePortRange, "node-port-range", "", "the host's node-port range, first-last; detected from the API server when empty")
	flag.StringVar(&cfg.SyncerImage, "syncer-image", "ghcr.io/warren-dev/warren-syncer:"+version, "the syncer image rendered beside each control plane")
	flag.StringSliceVar(&cfg.PodCIDRs, "pod-cidrs", nil, "the host's pod address ranges, comma-separated: with network isolation a cluster's API takes no traffic from them but its own namespace's and non-cluster namespaces' pods (every private range when empty)")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":8080", "where Prometheus metrics are served")
	flag.StringVar(&cfg.HealthAddr, "health-addr", ":9440", "where health and readiness probes are served")
	flag.StringVar(&cfg.PprofAddr, "pprof-bind-address", "0", "where Go's profiling endpoint is served (0 disables)")
	flag.IntVar(&cfg.Concurrency, "concurrent", 4, "Fleets and VirtualClusters reconciled at once")
	flag.StringVar(&cfg.WatchLabelSelector, "watch-label-selector", "", "reconcile only the Fleets with matching labels, e.g. 'sharding.fluxcd.io/key=shard1' (a shard; see config/sharded); every Fleet when empty")
	flag.StringVar(&cfg.LeaderNamespace, "leader-election-namespace", "", "namespace of the leader election lease (the pod's own when empty)")
	logOptions.BindFlags(flag.CommandLine)
	clientOptions.BindFlags(flag.CommandLine)
	cfg.LeaderElection.BindFlags(flag.CommandLine)
	cfg.RateLimiter.BindFlags(flag.CommandLine)
	cfg.IntervalJitter.BindFlags(flag.CommandLine)
	flag.CommandLine.AddGoFlagSet(goflag.CommandLine) // --kubeconfig, from controller-runtime
	flag.Parse()

	log := logger.NewLogger(logOptions)
	ctrl.SetLogger(log)
	restConfig := fluxclient.GetConfigOrDie(clientOptions)
	if err := controller.Run(ctrl.SetupSignalHandler(), restConfig, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "warren-reconciler:", err)
		os.Exit(1)
	}
}
