// Package setup wires the per-kind syncers between a virtual control plane
// and the one host namespace its workloads run in: two API connections, the
// host cache limited to this cluster's synced objects, leader election,
// health and metrics.
//
// It holds no sync logic of its own; each kind lives in its own package
// under syncer/resources.
// It must never widen the host cache beyond the host namespace; the one
// exception is the host's StorageClasses, cached (read only) when
// --sync-storage-classes asks for their mirror.
package setup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/initmanifests"
	"github.com/warren-dev/warren/syncer/kubeconfig"
	"github.com/warren-dev/warren/syncer/kubelet"
	"github.com/warren-dev/warren/syncer/resources/configmaps"
	"github.com/warren-dev/warren/syncer/resources/endpoints"
	"github.com/warren-dev/warren/syncer/resources/events"
	"github.com/warren-dev/warren/syncer/resources/ingresses"
	"github.com/warren-dev/warren/syncer/resources/namespaces"
	"github.com/warren-dev/warren/syncer/resources/nodes"
	"github.com/warren-dev/warren/syncer/resources/pods"
	"github.com/warren-dev/warren/syncer/resources/secrets"
	"github.com/warren-dev/warren/syncer/resources/services"
	"github.com/warren-dev/warren/syncer/resources/storageclasses"
	"github.com/warren-dev/warren/syncer/resources/volumes"
	"github.com/warren-dev/warren/syncer/translate"
)

// Run syncs until ctx ends.
func Run(ctx context.Context, cfg *config.Config) error {
	log := ctrl.Log.WithName("syncer")
	virtualCfg, err := virtualConfig(ctx, cfg)
	if err != nil {
		return err
	}
	hostCfg, err := hostConfig(cfg)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building scheme: %w", err)
	}
	names := translate.Translator{Cluster: cfg.Name, HostNamespace: cfg.HostNamespace}

	mgr, err := virtualManager(virtualCfg, scheme, cfg)
	if err != nil {
		return err
	}
	host, err := hostCluster(hostCfg, scheme, cfg, names)
	if err != nil {
		return err
	}
	if err := mgr.Add(host); err != nil {
		return fmt.Errorf("adding the host cluster: %w", err)
	}

	pair := &syncer.Pair{
		Config:        cfg,
		Names:         names,
		Virtual:       mgr.GetClient(),
		VirtualReader: mgr.GetAPIReader(),
		Host:          host.GetClient(),
		HostReader:    host.GetAPIReader(),
		HostCluster:   host,
		Events:        mgr.GetEventRecorder("warren-syncer"),
	}
	if err := setup(ctx, mgr, pair); err != nil {
		return err
	}
	init, err := addRunnables(mgr, pair, virtualCfg, hostCfg)
	if err != nil {
		return err
	}
	if err := addChecks(mgr, host, init); err != nil {
		return err
	}
	log.Info("starting", "cluster", cfg.Name, "hostNamespace", cfg.HostNamespace, "podSecurity", cfg.PodSecurity, "nodes", cfg.Nodes)
	return mgr.Start(ctx)
}

// virtualManager connects to the virtual API: the manager every kind's
// controller runs on.
func virtualManager(virtualCfg *rest.Config, scheme *runtime.Scheme, cfg *config.Config) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(virtualCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress:        cfg.HealthProbeBindAddress,
		PprofBindAddress:              cfg.PprofBindAddress,
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              "warren-syncer",
		LeaderElectionNamespace:       "kube-system",
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to the virtual API: %w", err)
	}
	return mgr, nil
}

// addRunnables adds what runs beside the kinds' controllers: the init
// manifests (returned, for the readiness check), the kubeconfig export and,
// when enabled, the kubelet API.
func addRunnables(mgr ctrl.Manager, pair *syncer.Pair, virtualCfg, hostCfg *rest.Config) (*initmanifests.Applier, error) {
	cfg, log := pair.Config, ctrl.Log.WithName("syncer")
	init := &initmanifests.Applier{
		HostReader: pair.HostReader, Virtual: pair.Virtual, Log: log.WithName("init-manifests"),
		ConfigMap: types.NamespacedName{Namespace: cfg.HostNamespace, Name: cfg.InitManifests},
	}
	runnables := []manager.Runnable{
		init,
		&kubeconfig.Exporter{
			Virtual: virtualCfg, Host: pair.Host, HostReader: pair.HostReader, Names: pair.Names,
			SecretName: cfg.KubeconfigSecret, ServiceName: cfg.ServiceName, Log: log.WithName("kubeconfig"),
		},
	}
	if cfg.KubeletEnabled() {
		runnables = append(runnables, &kubelet.Server{
			Address: cfg.KubeletAddress, TLSCertFile: cfg.KubeletTLSCertFile, TLSKeyFile: cfg.KubeletTLSKeyFile,
			ClientCAFile: cfg.KubeletClientCAFile, ClientCertFile: cfg.KubeletClientCertFile,
			Virtual: pair.Virtual, Host: pair.Host, HostConfig: hostCfg, Names: pair.Names, Log: log.WithName("kubelet"),
		})
	}
	for _, r := range runnables {
		if err := mgr.Add(r); err != nil {
			return nil, fmt.Errorf("adding %T: %w", r, err)
		}
	}
	return init, nil
}

// hostCluster connects to the host API with a cache of this cluster's
// synced objects in the host namespace (and, for their mirror, the host's
// StorageClasses).
func hostCluster(hostCfg *rest.Config, scheme *runtime.Scheme, cfg *config.Config, names translate.Translator) (cluster.Cluster, error) {
	// Events carry no labels of ours; the event syncer filters them.
	byObject := map[client.Object]cache.ByObject{&corev1.Event{}: {Label: labels.Everything()}}
	if cfg.SyncStorageClasses {
		// The platform's classes: cluster-scoped and unlabelled, all mirrored.
		byObject[&storagev1.StorageClass{}] = cache.ByObject{Label: labels.Everything()}
	}
	host, err := cluster.New(hostCfg, func(o *cluster.Options) {
		o.Scheme = scheme
		o.Cache = cache.Options{
			DefaultNamespaces:    map[string]cache.Config{cfg.HostNamespace: {}},
			DefaultLabelSelector: labels.SelectorFromSet(names.ManagedSelector()),
			DefaultTransform:     cache.TransformStripManagedFields(),
			ByObject:             byObject,
		}
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to the host API: %w", err)
	}
	return host, nil
}

// addChecks adds the health check and the readiness checks: both caches
// synced, and the init manifests (the tenants' access bindings among them)
// applied once, so that a Ready cluster already lets its tenants in.
func addChecks(mgr ctrl.Manager, host cluster.Cluster, init *initmanifests.Applier) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) || !host.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches not synced")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("init-manifests", func(*http.Request) error {
		if !init.Applied() {
			return errors.New("init manifests not applied yet")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	return nil
}

// setup registers every per-kind syncer.
func setup(ctx context.Context, mgr ctrl.Manager, pair *syncer.Pair) error {
	security, err := pods.NewSecurity(pair.Config.PodSecurity)
	if err != nil {
		return err
	}
	serviceCIDR, _ := netip.ParsePrefix(pair.Config.ServiceCIDR)
	security.Nameservers = &pods.Nameservers{ServiceCIDR: serviceCIDR, Allowed: pair.Config.Workloads.EndpointCIDRs}
	if err := syncer.IndexPodNodes(ctx, mgr); err != nil {
		return fmt.Errorf("indexing pods by node: %w", err)
	}
	if err := endpoints.IndexAddresses(ctx, mgr); err != nil {
		return err
	}
	accepted := func(p *corev1.Pod) bool { return security.Check(p) == "" }
	if err := syncer.IndexPodRefs(ctx, mgr, accepted); err != nil {
		return fmt.Errorf("indexing pods by configuration: %w", err)
	}
	nodeSyncer := &nodes.Syncer{Pair: pair}
	syncers := map[string]interface{ SetupWithManager(ctrl.Manager) error }{
		"node":          nodeSyncer,
		"pod":           pods.New(pair, security, nodeSyncer),
		"service":       services.New(pair),
		"endpointslice": endpoints.New(pair),
		"configmap":     configmaps.New(pair),
		"secret":        secrets.New(pair),
		"pvc":           volumes.New(pair),
		"event":         &events.Syncer{Pair: pair},
		"namespace":     &namespaces.Syncer{Pair: pair, Ingresses: pair.Config.SyncIngresses},
	}
	if pair.Config.SyncIngresses {
		if err := syncer.IndexIngressRefs(ctx, mgr); err != nil {
			return fmt.Errorf("indexing ingresses: %w", err)
		}
		syncers["ingress"] = ingresses.New(pair)
	}
	if pair.Config.SyncStorageClasses {
		syncers["storageclass"] = &storageclasses.Syncer{Pair: pair}
	} else if err := mgr.Add(&storageclasses.Remover{
		Virtual: pair.Virtual, VirtualReader: pair.VirtualReader, Log: ctrl.Log.WithName("syncer").WithName("storageclass"),
	}); err != nil {
		return fmt.Errorf("adding the storage class remover: %w", err)
	}
	for name, s := range syncers {
		if err := s.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("setting up the %s syncer: %w", name, err)
		}
	}
	return nil
}

// virtualConfig waits for the kubeconfig the virtual control plane writes
// when it first starts, then loads it.
func virtualConfig(ctx context.Context, cfg *config.Config) (*rest.Config, error) {
	for {
		if _, err := os.Stat(cfg.VirtualKubeconfig); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the virtual kubeconfig %s: %w", cfg.VirtualKubeconfig, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	c, err := clientcmd.BuildConfigFromFlags("", cfg.VirtualKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading the virtual kubeconfig %s: %w", cfg.VirtualKubeconfig, err)
	}
	c.QPS, c.Burst, c.UserAgent = cfg.VirtualQPS, cfg.VirtualBurst, "warren-syncer"
	return c, nil
}

func hostConfig(cfg *config.Config) (*rest.Config, error) {
	var c *rest.Config
	var err error
	if cfg.HostKubeconfig == "" {
		c, err = rest.InClusterConfig()
	} else {
		c, err = clientcmd.BuildConfigFromFlags("", cfg.HostKubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("loading the host API configuration: %w", err)
	}
	c.QPS, c.Burst, c.UserAgent = cfg.HostQPS, cfg.HostBurst, "warren-syncer"
	return c, nil
}
