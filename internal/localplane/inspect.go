package localplane

import (
	"fmt"
	"path/filepath"
	"strings"
)

// HostAddress is the host's address that real nodes and their pods reach:
// the host end of node 0's link, where the API server listens too. Serve
// there what pods must reach on this machine (a Git server, say); pods
// cannot reach the host's loopback. It is empty without real nodes.
func (p *Plane) HostAddress() string {
	if p.net == nil {
		return ""
	}
	return p.net.apiAddress().String()
}

func (p *Plane) realNode(i int) (*realNode, error) {
	if i < 0 || i >= len(p.nodes) {
		return nil, fmt.Errorf("the plane has no real node %d (it has %d)", i, len(p.nodes))
	}
	return p.nodes[i], nil
}

// KubeletDir is real node i's kubelet root directory (--root-dir): its
// pods/<uid> directories hold each pod's volumes and files.
func (p *Plane) KubeletDir(i int) (string, error) {
	n, err := p.realNode(i)
	if err != nil {
		return "", err
	}
	return filepath.Join(n.dir, "kubelet"), nil
}

// NetworkNamespace is the name of real node i's network namespace, for
// `ip netns exec` (its iptables rules live there).
func (p *Plane) NetworkNamespace(i int) (string, error) {
	n, err := p.realNode(i)
	if err != nil {
		return "", err
	}
	return n.net.netns, nil
}

// InNode runs a command inside real node i's network and mount namespaces,
// where its containerd, kubelet and kube-proxy run, and returns its
// standard output.
func (p *Plane) InNode(i int, args ...string) (string, error) {
	n, err := p.realNode(i)
	if err != nil {
		return "", err
	}
	return n.output(args...)
}

// Ctr runs containerd's ctr against real node i's containerd, in the
// namespace the kubelet uses (k8s.io), and returns its output.
func (p *Plane) Ctr(i int, args ...string) (string, error) {
	n, err := p.realNode(i)
	if err != nil {
		return "", err
	}
	return n.ctrOutput(n.tools, args...)
}

// KillContainer kills a container on real node i with SIGKILL, as a crash
// or the OOM killer would; the kubelet then restarts it as the pod's policy
// says. id is the container's ID as pod status reports it
// ("containerd://<id>") or bare.
func (p *Plane) KillContainer(i int, id string) error {
	id = strings.TrimPrefix(id, "containerd://")
	if id == "" {
		return fmt.Errorf("no container ID to kill on real node %d", i)
	}
	_, err := p.Ctr(i, "tasks", "kill", "--signal", "SIGKILL", id)
	return err
}
