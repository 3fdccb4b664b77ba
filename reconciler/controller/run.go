package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/metrics"
	"github.com/fluxcd/pkg/runtime/probes"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/render"
)

// ControllerName names warren's reconciler in events and leader election.
const ControllerName = "warren-reconciler"

// Config is what the reconciler process is told at start.
type Config struct {
	CacheDir string
	// ServiceCIDR overrides detection of the host's service range.
	ServiceCIDR string
	// NodePortRange overrides detection of the host's node-port range.
	NodePortRange string
	SyncerImage   string
	// PodCIDRs are the host's pod ranges, which a cluster's API never takes
	// traffic from but its own namespace's (render.Options.PodCIDRs).
	PodCIDRs []string
	Version  string

	MetricsAddr string
	HealthAddr  string
	// PprofAddr serves Go's /debug/pprof (none when empty or "0").
	PprofAddr       string
	Concurrency     int
	LeaderElection  leaderelection.Options
	RateLimiter     fluxcontroller.RateLimiterOptions
	LeaderNamespace string
	// IntervalJitter spreads the Fleets' periodic requeues (none when 0).
	IntervalJitter jitter.IntervalOptions
	// WatchLabelSelector shards Fleets across reconcilers (Flux's
	// --watch-label-selector, e.g. sharding.fluxcd.io/key=shard1): only
	// Fleets it matches are reconciled; all when empty.
	WatchLabelSelector string
}

// Scheme holds every type the reconciler reads or writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// Run starts the Fleet and readiness controllers and blocks until ctx ends.
func Run(ctx context.Context, restConfig *rest.Config, cfg Config, log logr.Logger) error {
	if log.GetSink() == nil {
		// logr.Discard() has no sink, and Flux's event recorder asks the
		// sink for its level: give it one that drops everything.
		log = funcr.New(func(string, string) {}, funcr.Options{})
	}
	if err := cfg.IntervalJitter.SetGlobalJitter(nil); err != nil {
		return err
	}
	shard, err := shardSelector(cfg)
	if err != nil {
		return err
	}
	restConfig = rest.CopyConfig(restConfig)
	restConfig.UserAgent = userAgent(cfg)
	scheme := Scheme()
	mgr, leading, err := newManager(restConfig, cfg, shard, scheme, log)
	if err != nil {
		return err
	}
	probes.SetupChecks(mgr, log)

	// The Applier reads the API server directly and learns new CRDs.
	applyClient, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	// With leader election every write waits on the lease: see fenced.
	writer := fenced(mgr.GetClient(), leading)
	applyClient = fenced(applyClient, leading)

	serviceCIDR, nodePorts, err := hostRanges(ctx, applyClient, cfg, log)
	if err != nil {
		return err
	}

	recorder := conditionMetrics()
	eventRecorder, err := events.NewRecorder(mgr, log, "", ControllerName)
	if err != nil {
		return err
	}
	opts := controller.Options{
		MaxConcurrentReconciles: max(cfg.Concurrency, 1),
		RateLimiter:             fluxcontroller.GetRateLimiter(cfg.RateLimiter),
		RecoverPanic:            ptr.To(true),
		// Run may be called more than once in a process (the demo, tests);
		// the metrics it registers are process-wide and registered once.
		SkipNameValidation: ptr.To(true),
	}
	hosts, err := setupHosts(mgr, restConfig, applyClient, leading, writer, eventRecorder, shard, opts)
	if err != nil {
		return err
	}
	fleets := &FleetReconciler{
		Client:        writer,
		APIReader:     mgr.GetAPIReader(),
		ApplyClient:   applyClient,
		EventRecorder: eventRecorder,
		Metrics:       fluxcontroller.NewMetrics(mgr, recorder, v1alpha1.FleetFinalizer),
		CacheDir:      cfg.CacheDir,
		Render:        render.Options{ServiceCIDR: serviceCIDR, NodePortRange: nodePorts, SyncerImage: cfg.SyncerImage, PodCIDRs: cfg.PodCIDRs},
		Version:       cfg.Version,
		Leading:       leading,
		Shard:         shard,
		hosts:         hosts,
	}
	if err := fleets.SetupWithManager(mgr, opts); err != nil {
		return err
	}
	readiness := &ReadinessReconciler{Client: writer, EventRecorder: eventRecorder, Shard: shard, Hosts: hosts}
	if err := readiness.SetupWithManager(mgr, opts); err != nil {
		return err
	}
	if err := setupKubeconfigPublisher(mgr, writer, restConfig, cfg, eventRecorder, opts, hosts); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// newManager makes the controller manager, with leader election when cfg
// asks for it; leading (nil without it) then says whether this replica
// still holds the lease. A shard (non-nil) caches only its own Fleets.
func newManager(restConfig *rest.Config, cfg Config, shard labels.Selector, scheme *runtime.Scheme, log logr.Logger) (ctrl.Manager, func(context.Context) error, error) {
	var (
		lock    resourcelock.Interface
		leading func(context.Context) error
	)
	lease := leaseName(cfg)
	if cfg.LeaderElection.Enable {
		var err error
		if lock, leading, err = leaseLock(restConfig, cfg.LeaderNamespace, lease, cfg.LeaderElection.RenewDeadline); err != nil {
			return nil, nil, err
		}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                              scheme,
		Logger:                              log,
		Metrics:                             metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:              cfg.HealthAddr,
		PprofBindAddress:                    cfg.PprofAddr,
		LeaderElection:                      cfg.LeaderElection.Enable,
		LeaderElectionID:                    lease,
		LeaderElectionResourceLockInterface: lock,
		LeaderElectionNamespace:             cfg.LeaderNamespace,
		LeaderElectionReleaseOnCancel:       cfg.LeaderElection.ReleaseOnCancel,
		LeaseDuration:                       &cfg.LeaderElection.LeaseDuration,
		RenewDeadline:                       &cfg.LeaderElection.RenewDeadline,
		RetryPeriod:                         &cfg.LeaderElection.RetryPeriod,
		Cache:                               cacheOptions(shard),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("creating the manager: %w", err)
	}
	return mgr, leading, nil
}

// hostRanges returns the host's service CIDR and node-port range: the
// configured ones, else what the host says.
func hostRanges(ctx context.Context, applyClient client.Client, cfg Config, log logr.Logger) (serviceCIDR, nodePorts string, err error) {
	serviceCIDR = cfg.ServiceCIDR
	if serviceCIDR == "" {
		cidrs, err := apply.DetectServiceCIDRs(ctx, applyClient)
		if err != nil {
			return "", "", fmt.Errorf("detecting the host's service CIDR (set --service-cidr to skip): %w", err)
		}
		// The first range is the primary family's, the one ClusterIPs come from.
		serviceCIDR = cidrs[0]
	}
	log.Info("host service CIDR", "cidr", serviceCIDR)

	nodePorts = cfg.NodePortRange
	if nodePorts == "" {
		// Only NodePort Services of clusters that sync them need it: a
		// host that will not say runs on the default, and each such
		// Service whose host ports the virtual side refuses says so
		// with a NodePortNotAligned event.
		if nodePorts, err = apply.DetectNodePortRange(ctx, applyClient); err != nil {
			log.Error(err, "detecting the host's node-port range; assuming the default (set --node-port-range to skip)", "default", render.DefaultNodePortRange)
			nodePorts = render.DefaultNodePortRange
		}
	}
	log.Info("host node-port range", "range", nodePorts)
	return serviceCIDR, nodePorts, nil
}

// conditionMetrics is the process's one recorder of Fleet conditions,
// suspension and reconcile durations, registered with the metrics registry
// the first time it is asked for.
var conditionMetrics = sync.OnceValue(func() *metrics.Recorder {
	r := metrics.NewRecorder()
	crmetrics.Registry.MustRegister(r.Collectors()...)
	return r
})

// DefaultLeaderElection is leader election as a Deployment of warren wants it.
func DefaultLeaderElection() leaderelection.Options {
	return leaderelection.Options{Enable: false, ReleaseOnCancel: true, LeaseDuration: 35 * time.Second, RenewDeadline: 30 * time.Second, RetryPeriod: 5 * time.Second}
}
