package render

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// Images warren runs besides the syncer.
const (
	k3sImage               = "rancher/k3s"
	apiServerImage         = "registry.k8s.io/kube-apiserver"
	controllerManagerImage = "registry.k8s.io/kube-controller-manager"
	etcdImage              = "registry.k8s.io/etcd"
	etcdTag                = "3.5.21-0"
	coreDNSImage           = "registry.k8s.io/coredns/coredns:v1.12.0"
	syncerImageName        = "ghcr.io/warren-dev/warren-syncer"
)

// K8sImages are the images a k8s-distro cluster of a Kubernetes version
// runs besides the syncer, exactly as warren renders them: a host that
// cannot pull them (no registry) must hold them under these names.
type K8sImages struct {
	APIServer, ControllerManager, Etcd, CoreDNS string
}

// K8sImagesFor names the k8s distro's images for version (vMAJOR.MINOR.PATCH).
func K8sImagesFor(version string) K8sImages {
	return K8sImages{
		APIServer:         apiServerImage + ":" + version,
		ControllerManager: controllerManagerImage + ":" + version,
		Etcd:              etcdImage + ":" + etcdTag,
		CoreDNS:           coreDNSImage,
	}
}

// The virtual controller manager runs without the controllers that manage
// nodes: the virtual cluster's nodes are the syncer's reflection of host
// nodes, not machines it should assign CIDRs to, evict from or detach from.
var disabledControllers = []string{
	"node-ipam-controller",
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"persistentvolume-attach-detach-controller",
	"ttl-controller",
}

func controllersFlag() string {
	return "*,-" + strings.Join(disabledControllers, ",-")
}

// k3sTag turns a version (v1.33.5 or v1.33.5+k3s2) into a rancher/k3s tag.
func k3sTag(version string) string {
	if strings.Contains(version, "+") {
		return strings.Replace(version, "+", "-", 1)
	}
	return version + "-k3s1"
}

// The kubelet API of the virtual nodes is the syncer's, on loopback in the
// control plane's pod (kubectl logs, exec, attach, port-forward). The
// init container `warren-syncer bootstrap-pki` issues its credentials from
// the cluster's CAs into /data/pki on both distros.
const (
	kubeletAddress        = "127.0.0.1:10250"
	kubeletClientCert     = "/data/pki/apiserver-kubelet-client.crt"
	kubeletClientKey      = "/data/pki/apiserver-kubelet-client.key"
	kubeletServingCert    = "/data/pki/kubelet-serving.crt"
	kubeletServingKey     = "/data/pki/kubelet-serving.key"
	kubeletClientCACopy   = "/data/pki/client-ca.crt"
	kubeletPreferredTypes = "InternalIP"
	k3sServerCA           = "/data/server/tls/server-ca.crt"
	k8sServerCA           = "/pki/server-ca.crt"
)

// apiServerKubeletFlags point the virtual API server at the syncer's kubelet
// API: the InternalIP the virtual nodes advertise first (loopback), the
// client certificate it presents, and the CA it checks the syncer's with.
func apiServerKubeletFlags(serverCA string) []string {
	return []string{
		"kubelet-preferred-address-types=" + kubeletPreferredTypes,
		"kubelet-certificate-authority=" + serverCA,
		"kubelet-client-certificate=" + kubeletClientCert,
		"kubelet-client-key=" + kubeletClientKey,
	}
}

func tlsSANs(vc *v1alpha1.VirtualCluster, n Names) []string {
	sans := []string{
		n.Service,
		n.Service + "." + n.Namespace,
		n.Service + "." + n.Namespace + ".svc",
		n.Service + "." + n.Namespace + ".svc.cluster.local",
	}
	if vc.Spec.Expose.Type == v1alpha1.ExposeIngress && vc.Spec.Expose.Host != "" {
		sans = append(sans, vc.Spec.Expose.Host)
	}
	return sans
}

func k3sArgs(vc *v1alpha1.VirtualCluster, n Names, o Options) []string {
	args := []string{
		"server",
		"--data-dir=/data",
		"--write-kubeconfig=/data/kubeconfig.yaml",
		"--disable-agent",
		"--disable-scheduler",
		"--disable-cloud-controller",
		"--disable-network-policy",
		"--disable-helm-controller",
		"--disable=traefik,servicelb,metrics-server,local-storage",
		"--flannel-backend=none",
		"--egress-selector-mode=disabled",
		"--https-listen-port=6443",
		"--service-cidr=" + o.ServiceCIDR,
		"--kube-apiserver-arg=endpoint-reconciler-type=none",
		"--kube-controller-manager-arg=controllers=" + controllersFlag(),
	}
	if o.NodePortRange != DefaultNodePortRange {
		args = append(args, "--service-node-port-range="+o.NodePortRange)
	}
	for _, f := range apiServerKubeletFlags(k3sServerCA) {
		args = append(args, "--kube-apiserver-arg="+f)
	}
	for _, san := range tlsSANs(vc, n) {
		args = append(args, "--tls-san="+san)
	}
	return args
}

func syncerArgs(vc *v1alpha1.VirtualCluster, n Names, in Input, o Options) ([]string, error) {
	args := []string{
		"--name=" + vc.Name,
		"--host-namespace=" + n.Namespace,
		"--virtual-kubeconfig=/data/kubeconfig.yaml",
		"--service-cidr=" + o.ServiceCIDR,
		"--service-name=" + n.Service,
		fmt.Sprintf("--sync-ingresses=%t", vc.Spec.Sync.Ingresses),
		fmt.Sprintf("--sync-storage-classes=%t", vc.Spec.Sync.StorageClasses),
		fmt.Sprintf("--sync-node-ports=%t", vc.Spec.Sync.NodePorts),
		fmt.Sprintf("--sync-load-balancers=%t", vc.Spec.Sync.LoadBalancers),
		"--nodes=" + string(vc.Spec.Sync.Nodes),
		"--pod-security=" + string(in.PodSecurity),
		"--init-manifests=" + n.InitManifests,
		"--kubeconfig-secret=" + n.KubeconfigSecret,
		"--config=/etc/warren/syncer.yaml",
		"--kubelet-address=" + kubeletAddress,
		"--kubelet-tls-cert-file=" + kubeletServingCert,
		"--kubelet-tls-key-file=" + kubeletServingKey,
		"--kubelet-client-ca-file=" + kubeletClientCACopy,
		"--kubelet-client-cert-file=" + kubeletClientCert,
		"--metrics-bind-address=:8080",
		"--health-probe-bind-address=:8081",
		"--leader-elect=true",
	}
	limits, err := workloadArgs(in.Workloads)
	return append(args, limits...), err
}

// workloadArgs are the syncer's flags for what the cluster's workloads may
// use of the host, each left out when empty (the syncer's default is then
// the safe one: the host's default storage class only, no static binding,
// no node selector or tolerations added, no ingress host, no ingress class
// but the default, no annotation, no endpoint outside the cluster's pods).
func workloadArgs(w v1alpha1.Workloads) ([]string, error) {
	var args []string
	list := func(flag string, values []string) {
		if len(values) > 0 {
			args = append(args, "--"+flag+"="+strings.Join(values, ","))
		}
	}
	list("storage-classes", w.StorageClasses)
	if w.StaticBinding != nil && *w.StaticBinding {
		args = append(args, "--allow-static-binding")
	}
	pairs := make([]string, 0, len(w.NodeSelector))
	for _, k := range slices.Sorted(maps.Keys(w.NodeSelector)) {
		pairs = append(pairs, k+"="+w.NodeSelector[k])
	}
	list("node-selector", pairs)
	if len(w.Tolerations) > 0 {
		b, err := json.Marshal(w.Tolerations)
		if err != nil {
			return nil, fmt.Errorf("tolerations: %w", err)
		}
		args = append(args, "--tolerations="+string(b))
	}
	list("ingress-hosts", w.IngressHosts)
	list("ingress-classes", w.IngressClasses)
	list("ingress-annotations", w.IngressAnnotations)
	list("pod-annotations", w.PodAnnotations)
	list("endpoint-cidrs", w.EndpointCIDRs)
	return args, nil
}

// k3sKubeletBootstrapArgs is the k3s distro's second init container: k3s
// issues its control plane's leaves itself, so only the kubelet API's are
// issued, from the same CAs.
func k3sKubeletBootstrapArgs() []string {
	return []string{"bootstrap-pki", "--kubelet-only", "--pki-dir=/pki", "--out-dir=/data/pki"}
}

// k8sBootstrapArgs is the k8s distro's init container: the syncer image
// issues the API server's serving certificate, the front-proxy client
// certificate and the admin and controller-manager kubeconfigs from the CAs
// in the PKI Secret, into /data/pki and /data/kubeconfig.yaml.
func k8sBootstrapArgs(vc *v1alpha1.VirtualCluster, n Names, o Options) []string {
	args := []string{
		"bootstrap-pki",
		"--pki-dir=/pki",
		"--out-dir=/data/pki",
		"--virtual-kubeconfig=/data/kubeconfig.yaml",
		"--service-cidr=" + o.ServiceCIDR,
	}
	for _, san := range tlsSANs(vc, n) {
		args = append(args, "--tls-san="+san)
	}
	return args
}

func etcdArgs() []string {
	return []string{
		"--data-dir=/data/etcd",
		"--listen-client-urls=http://127.0.0.1:2379",
		"--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380",
		"--listen-metrics-urls=http://127.0.0.1:2381",
	}
}

func apiServerArgs(o Options) []string {
	args := []string{
		"--etcd-servers=http://127.0.0.1:2379",
		"--secure-port=6443",
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
		"--tls-cert-file=/data/pki/apiserver.crt",
		"--tls-private-key-file=/data/pki/apiserver.key",
		"--client-ca-file=/pki/client-ca.crt",
		"--requestheader-client-ca-file=/pki/request-header-ca.crt",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=/data/pki/front-proxy-client.crt",
		"--proxy-client-key-file=/data/pki/front-proxy-client.key",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=/pki/service.key",
		"--service-account-signing-key-file=/pki/service.key",
	}
	for _, f := range apiServerKubeletFlags(k8sServerCA) {
		args = append(args, "--"+f)
	}
	// Only a host off the default says so, so that the rendered control
	// planes of most hosts stay as they were.
	if o.NodePortRange != DefaultNodePortRange {
		args = append(args, "--service-node-port-range="+o.NodePortRange)
	}
	return args
}

func controllerManagerArgs(o Options) []string {
	return []string{
		"--kubeconfig=/data/pki/controller-manager.conf",
		"--authentication-kubeconfig=/data/pki/controller-manager.conf",
		"--authorization-kubeconfig=/data/pki/controller-manager.conf",
		"--bind-address=127.0.0.1",
		"--controllers=" + controllersFlag(),
		"--service-cluster-ip-range=" + o.ServiceCIDR,
		"--root-ca-file=/pki/server-ca.crt",
		"--service-account-private-key-file=/pki/service.key",
		"--cluster-signing-cert-file=/pki/client-ca.crt",
		"--cluster-signing-key-file=/pki/client-ca.key",
		"--use-service-account-credentials=true",
		"--leader-elect=false",
	}
}
