// Package config turns the syncer's command line and optional YAML file into
// one validated Config. Flags win over the file; the file uses the flags'
// names as keys.
//
// It never talks to a cluster and never reads credentials; kubeconfig paths
// are only passed on.
package config

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// Node modes.
const (
	NodesFake = "fake" // virtual nodes made from pod.spec.nodeName only
	NodesReal = "real" // copy host node facts (needs read on host nodes)
)

// Config is everything the syncer is told.
type Config struct {
	Name               string
	HostNamespace      string
	VirtualKubeconfig  string
	HostKubeconfig     string // empty: in-cluster
	ServiceCIDR        string
	ServiceName        string
	SyncIngresses      bool
	SyncStorageClasses bool
	SyncNodePorts      bool
	SyncLoadBalancers  bool
	Nodes              string
	PodSecurity        string // baseline or restricted
	InitManifests      string
	KubeconfigSecret   string
	ConfigFile         string

	HostQPS      float32
	HostBurst    int
	VirtualQPS   float32
	VirtualBurst int

	// The kubelet API the syncer serves for its virtual nodes (off when
	// KubeletAddress is empty or "0").
	KubeletAddress        string
	KubeletTLSCertFile    string
	KubeletTLSKeyFile     string
	KubeletClientCAFile   string
	KubeletClientCertFile string

	MetricsBindAddress     string
	PprofBindAddress       string
	HealthProbeBindAddress string
	LeaderElect            bool

	// Workloads is the platform's word on what the cluster's workloads may
	// use of the host (--storage-classes, --node-selector, --ingress-hosts…).
	Workloads Workloads
}

// Parse reads args (without the program name). getenv supplies the downward
// API's POD_NAMESPACE default.
func Parse(args []string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	fs := pflag.NewFlagSet("warren-syncer", pflag.ContinueOnError)
	fs.StringVar(&c.Name, "name", "", "virtual cluster name")
	fs.StringVar(&c.HostNamespace, "host-namespace", getenv("POD_NAMESPACE"), "host namespace the virtual cluster's workloads run in (default $POD_NAMESPACE)")
	fs.StringVar(&c.VirtualKubeconfig, "virtual-kubeconfig", "/data/kubeconfig.yaml", "kubeconfig of the virtual API server")
	fs.StringVar(&c.HostKubeconfig, "host-kubeconfig", "", "kubeconfig of the host API server (empty: in-cluster)")
	fs.StringVar(&c.ServiceCIDR, "service-cidr", "10.96.0.0/16", "the host's service CIDR, which the virtual API server uses too")
	fs.StringVar(&c.ServiceName, "service-name", "", "the Service in the host namespace that serves the virtual API (default: --name)")
	fs.BoolVar(&c.SyncIngresses, "sync-ingresses", false, "copy Ingresses to the host")
	fs.BoolVar(&c.SyncStorageClasses, "sync-storage-classes", false, "mirror the host's StorageClasses into the virtual cluster and let virtual PVCs name them (otherwise the host default is used; needs list and watch on host storage classes)")
	fs.BoolVar(&c.SyncNodePorts, "sync-node-ports", false, "let virtual NodePort Services open node ports on the host (otherwise they are served as ClusterIP)")
	fs.BoolVar(&c.SyncLoadBalancers, "sync-load-balancers", false, "let virtual LoadBalancer Services ask the host for load balancers (otherwise they are served as ClusterIP)")
	fs.StringVar(&c.Nodes, "nodes", NodesFake, "virtual node objects: fake (from pod.spec.nodeName) or real (copy host node facts)")
	fs.StringVar(&c.PodSecurity, "pod-security", "baseline", "pod security level enforced before a pod reaches the host: baseline or restricted")
	fs.StringVar(&c.InitManifests, "init-manifests", "", "ConfigMap in the host namespace with manifests to apply in the virtual cluster (default: <name>-init-manifests)")
	fs.StringVar(&c.KubeconfigSecret, "kubeconfig-secret", "", "Secret in the host namespace the syncer writes the virtual cluster's kubeconfig to (default: <name>-kubeconfig)")
	fs.StringVar(&c.ConfigFile, "config", "", "optional YAML file with the same keys as the flags (flags win)")
	fs.Float32Var(&c.HostQPS, "host-qps", 300, "host API requests per second")
	fs.IntVar(&c.HostBurst, "host-burst", 600, "host API burst")
	fs.Float32Var(&c.VirtualQPS, "virtual-qps", 1000, "virtual API requests per second")
	fs.IntVar(&c.VirtualBurst, "virtual-burst", 2000, "virtual API burst")
	fs.StringVar(&c.KubeletAddress, "kubelet-address", "0", "IP:port to serve the kubelet API of the virtual nodes on, which they advertise to the virtual API server (0 disables; kubectl logs, exec, attach and port-forward then fail)")
	fs.StringVar(&c.KubeletTLSCertFile, "kubelet-tls-cert-file", "", "serving certificate of the kubelet API (issued by the virtual cluster's server CA)")
	fs.StringVar(&c.KubeletTLSKeyFile, "kubelet-tls-key-file", "", "key of --kubelet-tls-cert-file")
	fs.StringVar(&c.KubeletClientCAFile, "kubelet-client-ca-file", "", "the virtual cluster's client CA, which issued --kubelet-client-cert-file")
	fs.StringVar(&c.KubeletClientCertFile, "kubelet-client-cert-file", "", "the virtual API server's kubelet client certificate: the only client the kubelet API accepts")
	fs.StringVar(&c.MetricsBindAddress, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	fs.StringVar(&c.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "health and readiness probe address (0 disables)")
	fs.StringVar(&c.PprofBindAddress, "pprof-bind-address", "0", "Go profiling endpoint address (0 disables)")
	fs.BoolVar(&c.LeaderElect, "leader-elect", true, "elect a leader so two replicas never both write")
	var workloads workloadFlags
	workloads.bind(fs, c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.ConfigFile != "" {
		if err := applyFile(fs, c.ConfigFile); err != nil {
			return nil, err
		}
	}
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := workloads.parse(&c.Workloads); err != nil {
		return nil, err
	}
	return c, nil
}

// applyFile sets every flag the file names and the command line did not.
func applyFile(fs *pflag.FlagSet, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var values map[string]any
	if err := yaml.UnmarshalStrict(raw, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for key, v := range values {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("config file %s: field %q: unknown setting", path, key)
		}
		if f.Changed {
			continue
		}
		s, err := fileValue(v, f.Value.Type(), key == "tolerations")
		if err != nil {
			return fmt.Errorf("config file %s: field %q: %w", path, key, err)
		}
		if err := fs.Set(key, s); err != nil {
			return fmt.Errorf("config file %s: field %q: %w", path, key, err)
		}
	}
	return nil
}

// fileValue is a file's value as its flag (of flagType) would be written:
// lists comma-joined for list flags, maps as k=v pairs for map flags, and
// a list of objects as JSON for a flag that takes JSON (asJSON).
func fileValue(v any, flagType string, asJSON bool) (string, error) {
	switch v.(type) {
	case map[string]any:
		if flagType != "stringToString" {
			return "", fmt.Errorf("want a %s, got a map", flagType)
		}
	case []any:
		if flagType != "stringSlice" && !asJSON {
			return "", fmt.Errorf("want a %s, got a list", flagType)
		}
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case map[string]any:
		var pairs []string
		for k, val := range v {
			s, ok := val.(string)
			if !ok {
				return "", fmt.Errorf("%s: want a string value, got %T", k, val)
			}
			pairs = append(pairs, k+"="+s)
		}
		sort.Strings(pairs)
		return strings.Join(pairs, ","), nil
	case []any:
		if asJSON {
			raw, err := json.Marshal(v)
			return string(raw), err
		}
		var items []string
		for _, item := range v {
			s, ok := item.(string)
			if !ok {
				return "", fmt.Errorf("want a list of strings, got a %T in it", item)
			}
			items = append(items, s)
		}
		return strings.Join(items, ","), nil
	}
	return "", fmt.Errorf("want a string, number, boolean, list or map, got %T", v)
}

func (c *Config) defaults() {
	if c.ServiceName == "" {
		c.ServiceName = c.Name
	}
	if c.InitManifests == "" && c.Name != "" {
		c.InitManifests = c.Name + "-init-manifests"
	}
	if c.KubeconfigSecret == "" && c.Name != "" {
		c.KubeconfigSecret = c.Name + "-kubeconfig"
	}
}

func (c *Config) validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("--name: required")
	case c.HostNamespace == "":
		return fmt.Errorf("--host-namespace: required (or set POD_NAMESPACE)")
	case c.VirtualKubeconfig == "":
		return fmt.Errorf("--virtual-kubeconfig: required")
	case c.Nodes != NodesFake && c.Nodes != NodesReal:
		return fmt.Errorf("--nodes: %q is neither %q nor %q", c.Nodes, NodesFake, NodesReal)
	case c.PodSecurity != "baseline" && c.PodSecurity != "restricted":
		return fmt.Errorf("--pod-security: %q is neither \"baseline\" nor \"restricted\"", c.PodSecurity)
	case c.KubeletEnabled() && (c.KubeletTLSCertFile == "" || c.KubeletTLSKeyFile == "" || c.KubeletClientCAFile == "" || c.KubeletClientCertFile == ""):
		return fmt.Errorf("--kubelet-address: needs --kubelet-tls-cert-file, --kubelet-tls-key-file, --kubelet-client-ca-file and --kubelet-client-cert-file")
	case c.HostQPS <= 0 || c.VirtualQPS <= 0 || c.HostBurst <= 0 || c.VirtualBurst <= 0:
		return fmt.Errorf("--host-qps, --host-burst, --virtual-qps, --virtual-burst: must be positive")
	}
	if c.KubeletEnabled() {
		if _, _, err := c.KubeletEndpoint(); err != nil {
			return err
		}
	}
	return nil
}

// KubeletEnabled reports whether the syncer serves the kubelet API.
func (c *Config) KubeletEnabled() bool {
	return c.KubeletAddress != "" && c.KubeletAddress != "0"
}

// KubeletEndpoint is what the virtual nodes advertise: the IP address and
// port of --kubelet-address.
func (c *Config) KubeletEndpoint() (ip string, port int32, err error) {
	host, p, err := net.SplitHostPort(c.KubeletAddress)
	if err != nil {
		return "", 0, fmt.Errorf("--kubelet-address: %w", err)
	}
	if net.ParseIP(host) == nil || net.ParseIP(host).IsUnspecified() {
		return "", 0, fmt.Errorf("--kubelet-address: %q is not an IP address the virtual API server can reach (the virtual nodes advertise it)", host)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("--kubelet-address: port %q is not a port number", p)
	}
	return host, int32(n), nil
}
