package localplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Each plane with real nodes takes one index X (1..250) for the whole
// machine, so planes of concurrent test processes never share an address:
// node i is the network namespace warren-X-i, linked to the host by a veth
// pair with 10.213.X.(4i+1) on the host side and 10.213.X.(4i+2) in the
// namespace; its pods get 10.(214+i).X.0/24. Nothing else on the host
// changes: iptables rules, the CNI bridge and conntrack state live in the
// namespace and go with it.
const (
	maxRealNodes = 4
	linkPrefix   = "10.213."
)

// lockFile serialises the choice of X between processes.
const lockFile = "/run/warren-localkube.lock"

// nodeNet is one node's place on the host network.
type nodeNet struct {
	netns, hostLink string
	hostIP, nodeIP  netip.Addr
	podCIDR         netip.Prefix
}

// planeNet is the addresses a plane with real nodes took.
type planeNet struct {
	index int
	nodes []nodeNet
}

// apiAddress is where the plane's API server listens: the host side of the
// first node's link, which every node and pod can route to.
func (n *planeNet) apiAddress() netip.Addr { return n.nodes[0].hostIP }

// clusterCIDR is every pod range of the plane, for kube-proxy.
func (n *planeNet) clusterCIDR() string {
	cidrs := make([]string, len(n.nodes))
	for i, node := range n.nodes {
		cidrs[i] = node.podCIDR.String()
	}
	return strings.Join(cidrs, ",")
}

// setupNetwork takes a free index and makes count namespaces with their links.
func setupNetwork(count int) (*planeNet, error) {
	if count > maxRealNodes {
		return nil, fmt.Errorf("%d real nodes asked for, at most %d are supported", count, maxRealNodes)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("real nodes need root (network namespaces, containerd, kubelet); run as root or set WARREN_REAL_NODES=0 to skip them")
	}
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("real nodes: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("real nodes: locking %s: %w", lockFile, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	index, err := freeIndex()
	if err != nil {
		return nil, err
	}
	n := &planeNet{index: index}
	for i := range count {
		node := nodeNet{
			netns:    fmt.Sprintf("warren-%d-%d", index, i),
			hostLink: fmt.Sprintf("wrn%dn%d", index, i),
			hostIP:   netip.AddrFrom4([4]byte{10, 213, byte(index), byte(4*i + 1)}),
			nodeIP:   netip.AddrFrom4([4]byte{10, 213, byte(index), byte(4*i + 2)}),
			podCIDR:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(214 + i), byte(index), 0}), 24),
		}
		n.nodes = append(n.nodes, node)
		if err := node.create(); err != nil {
			n.remove()
			return nil, err
		}
	}
	return n, nil
}

// freeIndex is the lowest X no address or namespace on the host uses.
func freeIndex() (int, error) {
	addrs, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return 0, fmt.Errorf("real nodes: listing addresses (is iproute2 installed?): %w", err)
	}
	spaces, _ := exec.Command("ip", "netns", "list").Output()
	for x := 1; x <= 250; x++ {
		if strings.Contains(string(addrs), fmt.Sprintf(" %s%d.", linkPrefix, x)) ||
			strings.Contains(string(spaces), fmt.Sprintf("warren-%d-", x)) {
			continue
		}
		return x, nil
	}
	return 0, errors.New("real nodes: all 250 network indexes are taken; remove stale warren-* network namespaces (ip netns list)")
}

func (n nodeNet) create() error {
	in := func(args ...string) []string { return append([]string{"ip", "netns", "exec", n.netns}, args...) }
	steps := [][]string{
		{"ip", "netns", "add", n.netns},
		{"ip", "link", "add", n.hostLink, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
		{"ip", "addr", "add", n.hostIP.String() + "/30", "dev", n.hostLink},
		{"ip", "link", "set", n.hostLink, "up"},
		in("ip", "addr", "add", n.nodeIP.String()+"/30", "dev", "eth0"),
		in("ip", "link", "set", "eth0", "up"),
		in("ip", "link", "set", "lo", "up"),
		in("ip", "route", "add", "default", "via", n.hostIP.String()),
		// Both are per namespace: the host's own settings stay as they are.
		in("sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward"),
		in("sh", "-c", "echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables"),
		// The host reaches the node's pods (the API server calls webhooks,
		// tests dial pods) through the node.
		{"ip", "route", "add", n.podCIDR.String(), "via", n.nodeIP.String()},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("real node network %s: %s: %v: %s", n.netns, strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// remove deletes every namespace (which takes its link, the host's route
// through it, and all iptables state inside).
func (n *planeNet) remove() error {
	var errs []error
	for _, node := range n.nodes {
		if _, err := os.Stat("/run/netns/" + node.netns); err != nil {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", node.netns).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting network namespace %s: %v: %s", node.netns, err, out))
		}
	}
	return errors.Join(errs...)
}
