package localplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/warren-dev/warren/reconciler/pki"
)

// realNodeTools are what real nodes run from the tools cache.
var realNodeTools = []string{"kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns", "agnhost"}

// realNodeAPIServerArgs are the API server's flags for real nodes: it
// publishes its address as the kubernetes Service's endpoint (pods reach it
// there). Without real nodes its loopback address cannot be an endpoint, so
// it publishes none. (How it reaches kubelets: kubeletArgs.)
func realNodeAPIServerArgs(real bool) []string {
	if !real {
		return []string{"--endpoint-reconciler-type=none"}
	}
	return []string{"--endpoint-reconciler-type=lease"}
}

// RealNodeName is the name of the i-th real node of a plane.
func RealNodeName(i int) string { return fmt.Sprintf("real-node-%d", i) }

// realNode is one kubelet with its own containerd and kube-proxy, in its own
// network namespace. Its processes share one mount namespace (held by a
// sleeping process), so every mount they make, and the tmpfs over
// /run/containerd and /var/lib/cni that keeps their runtime files off the
// host, goes when the last of them ends.
type realNode struct {
	name   string
	net    nodeNet
	dir    string
	holder *process
	// cgroup is the kubelet's cgroup root, under every hierarchy.
	cgroup string
	procs  []*process
	// tools is the directory of the node's binaries (ctr among them).
	tools string
}

func (n *realNode) socket() string { return filepath.Join(n.dir, "containerd", "containerd.sock") }

// startRealNodes starts every node of the plane's network and waits until
// each is Ready.
func (p *Plane) startRealNodes(ctx context.Context, client kubernetes.Interface, tools string, f files) error {
	specs, err := nodeImages(tools, p.imageSpecs)
	if err != nil {
		return err
	}
	archive, err := imageArchive(specs)
	if err != nil {
		return err
	}
	images := []nodeImageSet{{archive: archive}}
	for _, s := range specs {
		images[0].refs = append(images[0].refs, s.Ref)
	}
	for _, file := range p.archives {
		refs, err := archiveRefs(file)
		if err != nil {
			return err
		}
		images = append(images, nodeImageSet{archive: file, refs: refs})
	}
	p.startNode = func(ctx context.Context, n *realNode) error { return n.start(ctx, p, tools, f, images) }
	for i, nn := range p.net.nodes {
		node := &realNode{
			name:   RealNodeName(i),
			net:    nn,
			dir:    filepath.Join(p.Dir, RealNodeName(i)),
			cgroup: nn.netns,
			tools:  tools,
		}
		p.nodes = append(p.nodes, node)
		if err := p.startNode(ctx, node); err != nil {
			return fmt.Errorf("real node %s: %w", node.name, err)
		}
	}
	if err := waitFor(ctx, 90*time.Second, p.nodes[len(p.nodes)-1].procs[1], "did not make its node Ready", func(ctx context.Context) (bool, error) {
		for _, node := range p.nodes {
			n, err := client.CoreV1().Nodes().Get(ctx, node.name, metav1.GetOptions{})
			if err != nil || !nodeReady(n) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil || !p.policies {
		return err
	}
	if err := grantPolicyControllers(ctx, client); err != nil {
		return err
	}
	for _, node := range p.nodes {
		if err := node.startPolicyController(ctx, p); err != nil {
			return fmt.Errorf("real node %s: %w", node.name, err)
		}
	}
	return nil
}

// StopRealNode stops the i-th real node as a power cut would: its kubelet,
// kube-proxy, containerd and every container on it end; the Node object
// stays, and the node's disk (its dir, the volumes of its local storage) is
// kept for StartRealNode.
func (p *Plane) StopRealNode(i int) error {
	if i < 0 || i >= len(p.nodes) {
		return fmt.Errorf("the plane has no real node %d", i)
	}
	return p.nodes[i].stop()
}

// StartRealNode boots a node stopped by StopRealNode again, on the same
// disk, network and name, and waits until its kubelet has made it Ready.
func (p *Plane) StartRealNode(ctx context.Context, i int) error {
	if i < 0 || i >= len(p.nodes) {
		return fmt.Errorf("the plane has no real node %d", i)
	}
	n := p.nodes[i]
	n.procs, n.holder = nil, nil
	if err := p.startNode(ctx, n); err != nil {
		return fmt.Errorf("real node %s: %w", n.name, err)
	}
	client, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 90*time.Second, n.procs[1], "did not make its node Ready again", func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && nodeReady(node), nil
	}); err != nil || !p.policies {
		return err
	}
	return n.startPolicyController(ctx, p)
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeImageSet is an image archive and the names in it.
type nodeImageSet struct {
	archive string
	refs    []string
}

func (n *realNode) start(ctx context.Context, p *Plane, tools string, f files, images []nodeImageSet) error {
	for _, d := range []string{"containerd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := n.makeCgroups(); err != nil {
		return err
	}
	// Not `ip netns exec`: it remounts /sys, hiding the cgroup hierarchies.
	holder, err := startProcess(n.name+"-namespace", "unshare", n.dir, nil,
		"--mount", "--propagation=slave", "--", "nsenter", "--net=/run/netns/"+n.net.netns, "--", "sleep", "infinity")
	if err != nil {
		return err
	}
	n.holder = holder
	if err := waitFor(ctx, 10*time.Second, holder, "did not enter the node's namespaces", func(context.Context) (bool, error) {
		return n.holderReady(), nil
	}); err != nil {
		return err
	}
	for _, d := range []string{"/run/containerd", "/var/lib/cni"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := n.inside("mount", "-t", "tmpfs", "tmpfs", d); err != nil {
			return err
		}
	}
	creds, err := n.writeConfig(p, tools, f)
	if err != nil {
		return err
	}
	containerd, err := n.run(tools, "containerd", "--config", filepath.Join(n.dir, "containerd.toml"))
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 60*time.Second, containerd, "did not serve", func(context.Context) (bool, error) {
		return n.ctr(tools, "version") == nil, nil
	}); err != nil {
		return err
	}
	for _, set := range images {
		if err := n.importImages(tools, set); err != nil {
			return err
		}
	}
	if _, err := n.run(tools, "kubelet", "--config="+filepath.Join(n.dir, "kubelet.yaml"),
		"--kubeconfig="+creds.kubelet, "--hostname-override="+n.name, "--node-ip="+n.net.nodeIP.String(),
		"--container-runtime-endpoint=unix://"+n.socket(), "--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet", "pki"), "--v=1"); err != nil {
		return err
	}
	_, err = n.run(tools, "kube-proxy", "--config="+filepath.Join(n.dir, "kube-proxy.yaml"), "--hostname-override="+n.name, "--v=1")
	return err
}

// holderReady reports whether the holder is in the node's network namespace
// (and so, already, in its own mount namespace).
func (n *realNode) holderReady() bool {
	var want, got syscall.Stat_t
	if syscall.Stat("/run/netns/"+n.net.netns, &want) != nil {
		return false
	}
	if syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", n.holder.cmd.Process.Pid), &got) != nil {
		return false
	}
	return want.Ino == got.Ino && want.Dev == got.Dev
}

// run starts a node program inside the node's namespaces, with the tools
// first on PATH (containerd finds its shim there).
func (n *realNode) run(tools, name string, args ...string) (*process, error) {
	env := append(os.Environ(), "PATH="+tools+":"+os.Getenv("PATH")+":/usr/sbin:/sbin")
	all := append([]string{"--target=" + strconv.Itoa(n.holder.cmd.Process.Pid), "--mount", "--net", "--", filepath.Join(tools, name)}, args...)
	proc, err := startProcess(n.name+"-"+name, "nsenter", n.dir, env, all...)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, proc)
	return proc, nil
}

// inside runs a short command in the node's namespaces.
func (n *realNode) inside(args ...string) error {
	_, err := n.output(args...)
	return err
}

// output runs a short command in the node's namespaces and returns its
// standard output.
func (n *realNode) output(args ...string) (string, error) {
	if n.holder == nil {
		return "", fmt.Errorf("real node %s is not running", n.name)
	}
	all := append([]string{"--target=" + strconv.Itoa(n.holder.cmd.Process.Pid), "--mount", "--net", "--"}, args...)
	cmd := exec.Command("nsenter", all...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("in node %s: %s: %v: %s", n.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (n *realNode) ctr(tools string, args ...string) error {
	_, err := n.ctrOutput(tools, args...)
	return err
}

func (n *realNode) ctrOutput(tools string, args ...string) (string, error) {
	return n.output(append([]string{filepath.Join(tools, "ctr"), "--address", n.socket(), "--namespace", "k8s.io"}, args...)...)
}

// importImages loads the image archive into containerd and pins every image
// in it, so the kubelet's image garbage collection never deletes what
// cannot be pulled back.
func (n *realNode) importImages(tools string, images nodeImageSet) error {
	if err := n.ctr(tools, "images", "import", images.archive); err != nil {
		return fmt.Errorf("importing images from %s: %w", images.archive, err)
	}
	for _, ref := range images.refs {
		if err := n.ctr(tools, "images", "label", ref, "io.cri-containerd.pinned=pinned"); err != nil {
			return fmt.Errorf("pinning %s: %w", ref, err)
		}
	}
	return nil
}

// writeConfig writes containerd's, the kubelet's and kube-proxy's
// configuration and credentials.
func (n *realNode) writeConfig(p *Plane, tools string, f files) (nodeCreds, error) {
	creds, err := writeNodeCredentials(n.dir, p.PKI, p.server, n.name)
	if err != nil {
		return creds, err
	}
	files := map[string]string{
		"containerd.toml":              containerdConfig(n),
		"kubelet.yaml":                 kubeletConfig(n, f.clientCA),
		"kube-proxy.yaml":              kubeProxyConfig(creds.proxy, n, p.net.clusterCIDR()),
		"cni/net.d/10-warren.conflist": cniConfig(n),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(n.dir, name), []byte(data), 0o600); err != nil {
			return creds, err
		}
	}
	return creds, nil
}

// nodeCreds are the kubeconfigs of a node's kubelet, kube-proxy and
// network-policy controller.
type nodeCreds struct{ kubelet, proxy, policies string }

func writeNodeCredentials(dir string, bundle *pki.Bundle, server, node string) (nodeCreds, error) {
	c := nodeCreds{
		kubelet:  filepath.Join(dir, "kubelet.kubeconfig"),
		proxy:    filepath.Join(dir, "kube-proxy.kubeconfig"),
		policies: filepath.Join(dir, policyController+".kubeconfig"),
	}
	for path, id := range map[string]pki.CertRequest{
		c.kubelet:  {CommonName: "system:node:" + node, Organizations: []string{"system:nodes"}},
		c.proxy:    {CommonName: "system:kube-proxy"},
		c.policies: {CommonName: policyControllerUser},
	} {
		kp, err := bundle.ClientCA.Issue(id)
		if err != nil {
			return c, err
		}
		kc, err := pki.Kubeconfig(server, bundle.ServerCA.CertPEM, kp)
		if err != nil {
			return c, err
		}
		if err := os.WriteFile(path, kc, 0o600); err != nil {
			return c, err
		}
	}
	return c, nil
}

// cgroupHierarchies are the mounted cgroup hierarchies (v1 controllers, the
// v1 name=systemd one, and the unified v2 one of a hybrid host).
func cgroupHierarchies() []string {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		dir := filepath.Join("/sys/fs/cgroup", e.Name())
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil && e.IsDir() {
			out = append(out, dir)
		}
	}
	if len(out) == 0 {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err == nil {
			out = append(out, "/sys/fs/cgroup") // a pure cgroup v2 host
		}
	}
	return out
}

// makeCgroups makes the kubelet's cgroup root under every hierarchy (the
// kubelet refuses a root that does not exist); cpuset's needs its parent's
// CPUs and memory nodes before anything can join it.
func (n *realNode) makeCgroups() error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, n.cgroup)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("making cgroup %s: %w", dir, err)
		}
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			if data, err := os.ReadFile(filepath.Join(h, file)); err == nil && filepath.Base(h) == "cpuset" {
				if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
					return fmt.Errorf("setting %s of %s: %w", file, dir, err)
				}
			}
		}
	}
	return nil
}

// stop ends the node and removes what it made on the host: its containers
// (everything in its cgroups), every process in its mount namespace (the
// shims), its cgroups. The network namespace is the plane's to delete.
func (n *realNode) stop() error {
	// The kubelet first, so it restarts nothing while the rest goes.
	for i := len(n.procs) - 1; i >= 0; i-- {
		if n.procs[i].name != n.name+"-containerd" {
			n.procs[i].stop(10 * time.Second)
		}
	}
	var errs []error
	killCgroupTree(n.cgroup)
	for _, proc := range n.procs {
		proc.stop(10 * time.Second)
	}
	if n.holder != nil {
		killMountNamespace(n.holder.cmd.Process.Pid)
		n.holder.stop(5 * time.Second)
	}
	if err := removeCgroupTree(n.cgroup); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killCgroupTree kills every process in the cgroup (any hierarchy) and its
// children.
func killCgroupTree(cgroup string) {
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, cgroup), func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			for _, field := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(field); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// killMountNamespace kills every process that shares holder's mount
// namespace, except holder itself.
func killMountNamespace(holder int) {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder))
	if err != nil {
		return
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == holder {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == want {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// removeCgroupTree removes the cgroup and its children, deepest first,
// retrying while killed processes leave.
func removeCgroupTree(cgroup string) error {
	var last error
	for range 50 {
		last = nil
		for _, h := range cgroupHierarchies() {
			root := filepath.Join(h, cgroup)
			var dirs []string
			_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(dirs[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
					last = fmt.Errorf("removing cgroup %s: %w", dirs[i], err)
				}
			}
		}
		if last == nil {
			return nil
		}
		killCgroupTree(cgroup)
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// trace is something a real node made on the host, and how to see that it
// is still there.
type trace struct {
	what  string
	there func() bool
}

// traces lists what the plane's real nodes made on the host.
func (p *Plane) traces() []trace {
	var out []trace
	exists := func(path string) func() bool {
		return func() bool { _, err := os.Stat(path); return err == nil }
	}
	if p.policies {
		out = append(out, trace{"kube-router's iptables chains or ipsets in the host's network namespace", func() bool { return len(hostPolicyState()) > 0 }})
	}
	for _, node := range p.nodes {
		out = append(out,
			trace{"network namespace " + node.net.netns, exists("/run/netns/" + node.net.netns)},
			trace{"host link " + node.net.hostLink, exists("/sys/class/net/" + node.net.hostLink)},
			trace{"node directory " + node.dir, exists(node.dir)},
		)
		for _, h := range cgroupHierarchies() {
			out = append(out, trace{"cgroup " + filepath.Join(h, node.cgroup), exists(filepath.Join(h, node.cgroup))})
		}
		if node.holder != nil {
			ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", node.holder.cmd.Process.Pid))
			if err == nil {
				out = append(out, trace{"processes in the mount namespace of " + node.name, func() bool { return mountNamespaceUsed(ns) }})
			}
		}
	}
	return out
}

func mountNamespaceUsed(ns string) bool {
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if got, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && got == ns {
			return true
		}
	}
	return false
}

// LeftoversCheck returns a check for after Stop: it says, for what the plane's real
// nodes made on the host (network namespaces, links, cgroups, processes,
// directories), what is still there. Call it before Stop.
func (p *Plane) LeftoversCheck() func() []string {
	traces := p.traces()
	return func() []string {
		var left []string
		for _, t := range traces {
			if t.there() {
				left = append(left, t.what)
			}
		}
		return left
	}
}
