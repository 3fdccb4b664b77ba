package localplane

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialContext dials addr (an IP address and port: no name is resolved)
// from inside real node i's network namespace, as a process on that node
// would. A node's own traffic to its pods passes every NetworkPolicy (the
// kubelet's probes need it); the machine's traffic, from outside the node,
// is subject to them like any other host's.
func (p *Plane) DialContext(i int) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	n, err := p.realNode(i)
	if err != nil {
		return nil, err
	}
	path := "/run/netns/" + n.net.netns
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, err := netip.ParseAddrPort(addr); err != nil {
			return nil, fmt.Errorf("dialling from real node %d: %q is not an IP address and port", i, addr)
		}
		return dialInNetns(ctx, path, network, addr)
	}, nil
}

// dialInNetns creates the connection's socket inside the network namespace
// at path: the dialling goroutine's thread enters it for the dial only
// (a socket keeps the namespace it was made in). A thread that cannot
// return to its own namespace is never reused: it stays locked, and ends
// with the goroutine.
func dialInNetns(ctx context.Context, path, network, addr string) (net.Conn, error) {
	target, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer own.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("entering %s: %w", path, err)
	}
	var d net.Dialer
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leaving %s: %w", path, err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

// podNode is the real node whose pod range holds ip (node 0 if none does).
func (p *Plane) podNode(ip string) int {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return 0
	}
	for i, n := range p.nodes {
		if n.net.podCIDR.Contains(addr) {
			return i
		}
	}
	return 0
}

// PodCIDRs are the pod address ranges of the plane's real nodes.
func (p *Plane) PodCIDRs() []string {
	var out []string
	for _, n := range p.nodes {
		out = append(out, n.net.podCIDR.String())
	}
	return out
}
