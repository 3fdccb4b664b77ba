package localplane

import (
	"fmt"
	"path/filepath"
)

// The node's settings, each needed on these machines (see
// docs/real-nodes.md): the VM drops CAP_SYS_RESOURCE from every process, so
// nothing may lower an oom_score_adj below 0 (containerd's
// restrict_oom_score_adj and the kubelet's oomScoreAdj: 0); the host is
// cgroup v1 without systemd (cgroupfs); images can never be pulled again,
// so image garbage collection never starts (100/99) and the sandbox image is
// pinned.

// SandboxImage is the pod sandbox ("pause") image real nodes run; it is
// agnhost's pause.
const SandboxImage = "registry.k8s.io/pause:3.10"

func containerdConfig(n *realNode) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true

  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = 'io.containerd.runc.v2'

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = '/usr/sbin/runc'
      SystemdCgroup = false

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %[5]q

# NRI's socket is one path for the whole machine.
[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[6]q
`, filepath.Join(n.dir, "containerd", "root"), filepath.Join(n.dir, "containerd", "state"),
		n.socket(), n.socket()+".ttrpc", filepath.Join(n.dir, "cni", "net.d"), SandboxImage)
}

func kubeletConfig(n *realNode, clientCA string) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[2]q
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: /%[3]s
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
podLogsDir: %[4]q
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
serializeImagePulls: false
registerNode: true
maxPods: 110
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
`, n.net.nodeIP, clientCA, n.cgroup, filepath.Join(n.dir, "pod-logs"))
}

func kubeProxyConfig(kubeconfig string, n *realNode, clusterCIDR string) string {
	// conntrack at zero: kube-proxy leaves the machine's conntrack table and
	// timeouts as they are (some of them are not per namespace).
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]q
mode: iptables
hostnameOverride: %[2]s
bindAddress: %[3]s
clusterCIDR: %[4]s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, n.name, n.net.nodeIP, clusterCIDR)
}

// cniConfig is a bridge inside the node's namespace with addresses from the
// node's pod range; traffic leaving the range is masqueraded to the node's
// address, so the host needs no route back to pods.
func cniConfig(n *realNode) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %[1]q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %[2]q,
        "ranges": [[{"subnet": %[3]q}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.net.netns, filepath.Join(n.dir, "cni", "ipam"), n.net.podCIDR)
}
