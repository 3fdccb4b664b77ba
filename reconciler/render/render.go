package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	kustypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/templates"
)

const (
	// DefaultServiceCIDR is the host service CIDR when Options names none.
	DefaultServiceCIDR = "10.96.0.0/16"
	// DefaultNodePortRange is Kubernetes' own --service-node-port-range,
	// the host's when Options names none.
	DefaultNodePortRange = "30000-32767"
	// DefaultSyncerImage is the syncer image when Options names none.
	DefaultSyncerImage = syncerImageName + ":v0.1.0"

	// dataSize is the control plane's data volume.
	dataSize = "5Gi"
)

// checkPortRange accepts "first-last" with 1 <= first <= last <= 65535.
func checkPortRange(r string) error {
	first, last, ok := strings.Cut(r, "-")
	a, errA := strconv.Atoi(first)
	b, errB := strconv.Atoi(last)
	if !ok || errA != nil || errB != nil || a < 1 || b > 65535 || a > b {
		return fmt.Errorf("node-port range %q: want first-last, two ports from 1 to 65535, the first not above the last", r)
	}
	return nil
}

// Options are the inputs that come from the host, not the repository.
type Options struct {
	// ServiceCIDR is the host's service CIDR. The virtual API server uses
	// the same range so that the syncer can give each virtual service its
	// host twin's ClusterIP.
	ServiceCIDR string
	// NodePortRange is the host's node-port range, "first-last". The
	// virtual API server uses the same range so that the syncer can give
	// each virtual NodePort Service its host twin's ports.
	NodePortRange string
	// SyncerImage is the syncer's image reference (name:tag or name@digest).
	SyncerImage string
	// PodCIDRs are the host's pod address ranges. With network isolation,
	// a cluster's API takes traffic from addresses outside them but not
	// from inside (other clusters' pods); without them, every private
	// range counts as inside.
	PodCIDRs []string
}

func (o Options) withDefaults() (Options, error) {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = DefaultServiceCIDR
	}
	p, err := netip.ParsePrefix(o.ServiceCIDR)
	if err != nil {
		return o, fmt.Errorf("service CIDR %q: %w", o.ServiceCIDR, err)
	}
	if p.Masked() != p {
		return o, fmt.Errorf("service CIDR %q has host bits set; did you mean %s?", o.ServiceCIDR, p.Masked())
	}
	if o.NodePortRange == "" {
		o.NodePortRange = DefaultNodePortRange
	}
	if err := checkPortRange(o.NodePortRange); err != nil {
		return o, err
	}
	if o.SyncerImage == "" {
		o.SyncerImage = DefaultSyncerImage
	}
	for _, c := range o.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return o, fmt.Errorf("pod CIDR %q: %w", c, err)
		}
		if p.Masked() != p {
			return o, fmt.Errorf("pod CIDR %q has host bits set; did you mean %s?", c, p.Masked())
		}
	}
	return o, nil
}

// Input is everything render needs about one cluster.
type Input struct {
	// Cluster is the defaulted definition.
	Cluster *v1alpha1.VirtualCluster
	// PodSecurity and NetworkIsolation come from the tenant's policy.
	PodSecurity      v1alpha1.PodSecurityLevel
	NetworkIsolation bool
	// Workloads is what the cluster's workloads may use of the host (the
	// cluster's request within its policy), passed to the syncer.
	Workloads v1alpha1.Workloads
	// Overlay is the repository's templates/ folder (a kustomize
	// Component), keyed by path below templates/; empty for none.
	Overlay map[string][]byte
}

// InputFor makes the input for an admitted cluster of repo.
func InputFor(a policy.Admission, repo *load.Repository) Input {
	in := Input{
		Cluster:          a.Cluster.Object,
		PodSecurity:      a.Policy.Object.Spec.PodSecurity,
		NetworkIsolation: a.Policy.Object.Isolated(),
		Workloads:        a.Workloads(),
	}
	if repo != nil {
		in.Overlay = repo.Templates
	}
	return in
}

// Output is one cluster's rendered objects, in apply order.
type Output struct {
	Cluster string
	Objects []*unstructured.Unstructured
}

// YAML is the objects as one YAML stream.
func (o *Output) YAML() ([]byte, error) {
	return Stream([]*Output{o})
}

// Stream writes the objects of several outputs as one YAML stream, each
// document preceded by "---".
func Stream(outs []*Output) ([]byte, error) {
	var buf bytes.Buffer
	for _, o := range outs {
		for _, obj := range o.Objects {
			b, err := yaml.Marshal(obj.Object)
			if err != nil {
				return nil, fmt.Errorf("cluster %s: %s %s: %w", o.Cluster, obj.GetKind(), obj.GetName(), err)
			}
			buf.WriteString("---\n")
			buf.Write(b)
		}
	}
	return buf.Bytes(), nil
}

// Fleet renders every admitted cluster of repo, sorted by name.
func Fleet(repo *load.Repository, admitted []policy.Admission, o Options) ([]*Output, error) {
	outs := make([]*Output, 0, len(admitted))
	for _, a := range admitted {
		out, err := Cluster(InputFor(a, repo), o)
		if err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].Cluster < outs[j].Cluster })
	return outs, nil
}

// Cluster renders one cluster.
func Cluster(in Input, o Options) (*Output, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	vc := in.Cluster.DeepCopy()
	vc.Default()
	if in.PodSecurity == "" {
		in.PodSecurity = v1alpha1.PodSecurityRestricted
	}
	n := NamesFor(vc)

	fsys := filesys.MakeFsInMemory()
	if err := writeTemplates(fsys, vc.Name, n.Namespace); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", vc.Name, err)
	}
	for name, data := range in.Overlay {
		if err := writeFile(fsys, path.Join("/repo/templates", name), data); err != nil {
			return nil, fmt.Errorf("cluster %s: templates/%s: %w", vc.Name, name, err)
		}
	}
	inner, err := clusterKustomization(vc, n, in, o)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", vc.Name, err)
	}
	if err := writeYAML(fsys, "/build/cluster/kustomization.yaml", inner); err != nil {
		return nil, err
	}
	if err := writeYAML(fsys, "/build/overlay/kustomization.yaml", overlayKustomization(vc, n, len(in.Overlay) > 0)); err != nil {
		return nil, err
	}

	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fsys, "/build/overlay")
	if err != nil {
		if len(in.Overlay) > 0 {
			return nil, fmt.Errorf("cluster %s: building warren's base with the repository's templates/ overlay: %w", vc.Name, err)
		}
		return nil, fmt.Errorf("cluster %s: building warren's base: %w", vc.Name, err)
	}
	out := &Output{Cluster: vc.Name}
	for _, r := range rm.Resources() {
		// Through JSON, so that numbers are int64 as client-go expects.
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", vc.Name, err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(b); err != nil {
			return nil, fmt.Errorf("cluster %s: %s: %w", vc.Name, r.CurId(), err)
		}
		out.Objects = append(out.Objects, obj)
	}
	sortObjects(out.Objects)
	return out, nil
}

// writeTemplates copies the embedded base and components into the
// in-memory file system, with the placeholders replaced.
func writeTemplates(fsys filesys.FileSystem, name, namespace string) error {
	r := strings.NewReplacer(templates.ClusterName, name, templates.HostNamespace, namespace)
	return fs.WalkDir(templates.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		data, err := fs.ReadFile(templates.FS, p)
		if err != nil {
			return err
		}
		return writeFile(fsys, path.Join("/warren", p), []byte(r.Replace(string(data))))
	})
}

func writeFile(fsys filesys.FileSystem, p string, data []byte) error {
	if err := fsys.MkdirAll(path.Dir(p)); err != nil {
		return err
	}
	return fsys.WriteFile(p, data)
}

func writeYAML(fsys filesys.FileSystem, p string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return writeFile(fsys, p, b)
}

// patch renders a strategic-merge patch as inline kustomize patch text.
func patch(obj map[string]any) (kustypes.Patch, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return kustypes.Patch{}, err
	}
	return kustypes.Patch{Patch: string(b)}, nil
}

// image is the kustomize image entry that points the syncer image at ref
// (name:tag, name@digest or a bare name).
func image(ref string) kustypes.Image {
	img := kustypes.Image{Name: syncerImageName}
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		img.NewName, img.Digest = name, digest
		return img
	}
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		img.NewName, img.NewTag = ref[:colon], ref[colon+1:]
		return img
	}
	img.NewName = ref
	return img
}

// kustomization is a Kustomization file of these resources.
func kustomization(resources ...string) *kustypes.Kustomization {
	k := &kustypes.Kustomization{Resources: resources}
	k.FixKustomization()
	return k
}

// clusterKustomization builds warren's base for one cluster: the
// components its spec picks, its images, and its patches.
func clusterKustomization(vc *v1alpha1.VirtualCluster, n Names, in Input, o Options) (*kustypes.Kustomization, error) {
	pod, err := podSpec(vc, n, in, o)
	if err != nil {
		return nil, err
	}
	patches, err := clusterPatches(vc, n, in, pod)
	if err != nil {
		return nil, err
	}
	k := kustomization("../../warren/base")
	k.Components = components(vc, in)
	k.Images = images(vc, o)
	k.Patches = patches
	if in.NetworkIsolation && len(o.PodCIDRs) > 0 {
		p, err := apiPolicyPatch(n, o.PodCIDRs)
		if err != nil {
			return nil, err
		}
		k.Patches = append(k.Patches, p)
	}
	if vc.Spec.Paused {
		k.Replicas = []kustypes.Replica{{Name: n.StatefulSet, Count: 0}}
	}
	return k, nil
}

// components are the base's components the cluster's spec picks.
func components(vc *v1alpha1.VirtualCluster, in Input) []string {
	s := vc.Spec
	picked := []string{string(s.Distro)}
	if in.NetworkIsolation {
		picked = append(picked, "isolation")
	}
	switch s.Expose.Type {
	case v1alpha1.ExposeNodePort:
		picked = append(picked, "expose-nodeport")
	case v1alpha1.ExposeLoadBalancer:
		picked = append(picked, "expose-loadbalancer")
	case v1alpha1.ExposeIngress:
		picked = append(picked, "expose-ingress")
	}
	if s.Sync.Ingresses {
		picked = append(picked, "sync-ingresses")
	}
	if s.Sync.Nodes == v1alpha1.NodesReal || s.Sync.StorageClasses {
		picked = append(picked, "host-read")
	}
	if s.Sync.Nodes == v1alpha1.NodesReal {
		picked = append(picked, "host-read-nodes")
	}
	if s.Sync.StorageClasses {
		picked = append(picked, "host-read-storage-classes")
	}
	out := make([]string, 0, len(picked))
	for _, c := range picked {
		out = append(out, "../../warren/components/"+c)
	}
	return out
}

// images are the syncer's and the distro's images.
func images(vc *v1alpha1.VirtualCluster, o Options) []kustypes.Image {
	s := vc.Spec
	if s.Distro == v1alpha1.DistroK8s {
		return []kustypes.Image{image(o.SyncerImage),
			{Name: apiServerImage, NewTag: s.Version},
			{Name: controllerManagerImage, NewTag: s.Version},
			{Name: etcdImage, NewTag: etcdTag},
		}
	}
	return []kustypes.Image{image(o.SyncerImage), {Name: k3sImage, NewTag: k3sTag(s.Version)}}
}

// podSpec is the control plane pod's patch: each container's arguments.
func podSpec(vc *v1alpha1.VirtualCluster, n Names, in Input, o Options) (map[string]any, error) {
	var containers, initContainers []any
	switch vc.Spec.Distro {
	case v1alpha1.DistroK8s:
		// etcd and kube-apiserver are sidecars: the controller-manager
		// starts once the API server is ready.
		initContainers = []any{
			map[string]any{"name": "pki", "args": k8sBootstrapArgs(vc, n, o)},
			map[string]any{"name": "etcd", "args": etcdArgs()},
			map[string]any{"name": "kube-apiserver", "args": apiServerArgs(o)},
		}
		containers = []any{
			map[string]any{"name": "kube-controller-manager", "args": controllerManagerArgs(o)},
		}
	default:
		initContainers = []any{map[string]any{"name": "kubelet-pki", "args": k3sKubeletBootstrapArgs()}}
		containers = []any{map[string]any{"name": "k3s", "args": k3sArgs(vc, n, o)}}
	}
	syncer, err := syncerArgs(vc, n, in, o)
	if err != nil {
		return nil, err
	}
	containers = append(containers, map[string]any{"name": "syncer", "args": syncer})
	return map[string]any{"containers": containers, "initContainers": initContainers}, nil
}

// clusterPatches are the strategic-merge patches of the base's objects
// (the control plane pod, the namespace's Pod Security level, the init
// manifests, the syncer's settings, the quota) and the Ingress's host.
func clusterPatches(vc *v1alpha1.VirtualCluster, n Names, in Input, pod map[string]any) ([]kustypes.Patch, error) {
	manifests, err := initManifests(vc)
	if err != nil {
		return nil, err
	}
	syncerConfig, err := yaml.Marshal(map[string]any{
		// The syncer's own defaults, written out so a repository's overlay
		// can tune them: 1,000 new pods need hundreds of host writes a second.
		"host-qps": 300, "host-burst": 600, "virtual-qps": 1000, "virtual-burst": 2000,
	})
	if err != nil {
		return nil, err
	}
	level := string(in.PodSecurity)
	var patches []kustypes.Patch
	for _, obj := range []map[string]any{
		object("apps/v1", "StatefulSet", n.StatefulSet, nil, "spec", map[string]any{"template": map[string]any{"spec": pod}}),
		object("v1", "Namespace", n.Namespace, map[string]any{
			"pod-security.kubernetes.io/enforce": level,
			"pod-security.kubernetes.io/warn":    level,
			"pod-security.kubernetes.io/audit":   level,
		}, "", nil),
		object("v1", "ConfigMap", n.InitManifests, nil, "data", manifests),
		object("v1", "ConfigMap", n.SyncerConfig, nil, "data", map[string]any{"syncer.yaml": string(syncerConfig)}),
		object("v1", "ResourceQuota", n.StatefulSet, nil, "spec", map[string]any{"hard": quota(vc)}),
	} {
		p, err := patch(obj)
		if err != nil {
			return nil, err
		}
		patches = append(patches, p)
	}
	if vc.Spec.Expose.Type != v1alpha1.ExposeIngress {
		return patches, nil
	}
	p, err := ingressPatch(vc, n)
	return append(patches, p), err
}

// object is a patch's object: its kind, name and labels, and one field.
func object(apiVersion, kind, name string, labels map[string]any, field string, value any) map[string]any {
	meta := map[string]any{"name": name}
	if labels != nil {
		meta["labels"] = labels
	}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	if field != "" {
		obj[field] = value
	}
	return obj
}

// ingressPatch gives the exposing Ingress its host and class.
func ingressPatch(vc *v1alpha1.VirtualCluster, n Names) (kustypes.Patch, error) {
	e := vc.Spec.Expose
	ops := []any{map[string]any{"op": "replace", "path": "/spec/rules/0/host", "value": e.Host}}
	if e.IngressClassName != "" {
		ops = append(ops, map[string]any{"op": "add", "path": "/spec/ingressClassName", "value": e.IngressClassName})
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return kustypes.Patch{}, err
	}
	return kustypes.Patch{Target: &kustypes.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "Ingress"}, Name: n.Service}}, Patch: string(b)}, nil
}

// apiPolicyPatch leaves the host's pod ranges out of the addresses the API
// policy (templates/components/isolation) admits: each family's ranges
// replace that family's default private ranges.
func apiPolicyPatch(n Names, podCIDRs []string) (kustypes.Patch, error) {
	var ops []any
	for i, v6 := range []bool{false, true} {
		var except []string
		for _, c := range podCIDRs {
			if netip.MustParsePrefix(c).Addr().Is6() == v6 {
				except = append(except, c)
			}
		}
		if len(except) > 0 {
			ops = append(ops, map[string]any{"op": "replace", "path": fmt.Sprintf("/spec/ingress/0/from/%d/ipBlock/except", i+1), "value": except})
		}
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return kustypes.Patch{}, err
	}
	return kustypes.Patch{Target: &kustypes.Selector{ResId: resid.ResId{Gvk: resid.Gvk{Kind: "NetworkPolicy"}, Name: n.Service + "-api"}}, Patch: string(b)}, nil
}

// overlayKustomization layers the repository's templates/ Component over the
// cluster's build, then sets the namespace and labels, so that objects the
// overlay adds carry them too and no overlay can drop them.
func overlayKustomization(vc *v1alpha1.VirtualCluster, n Names, withOverlay bool) *kustypes.Kustomization {
	k := kustomization("../cluster")
	k.Namespace = n.Namespace
	k.Labels = []kustypes.Label{{
		Pairs:            map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue, v1alpha1.ClusterLabel: vc.Name},
		IncludeTemplates: true,
	}}
	if withOverlay {
		k.Components = []string{"../../repo/templates"}
	}
	return k
}

// controlPlane is what the control plane pod itself takes from the
// namespace's quota, which covers the whole host namespace.
func controlPlane(d v1alpha1.Distro) (cpu, memory string) {
	if d == v1alpha1.DistroK8s {
		return "350m", "576Mi"
	}
	return "250m", "320Mi"
}

// quota is the tenant's amount plus the control plane's own requests.
func quota(vc *v1alpha1.VirtualCluster) map[string]any {
	r := vc.Spec.Resources
	cpu, mem := controlPlane(vc.Spec.Distro)
	hard := map[string]any{}
	plus := func(key string, q *resource.Quantity, extra string) {
		if q == nil {
			return
		}
		sum := q.DeepCopy()
		sum.Add(resource.MustParse(extra))
		hard[key] = sum.String()
	}
	plus("requests.cpu", r.CPU, cpu)
	plus("requests.memory", r.Memory, mem)
	plus("requests.storage", r.Storage, dataSize)
	plus("pods", r.Pods, "1")

	// Node ports and load balancers the cluster may not have are held at
	// what its own API Service needs, so the host refuses them even if the
	// syncer were tricked into asking.
	sync, expose := vc.Spec.Sync, vc.Spec.Expose.Type
	if !sync.NodePorts && !sync.LoadBalancers {
		hard["services.nodeports"] = "0"
		if expose == v1alpha1.ExposeNodePort || expose == v1alpha1.ExposeLoadBalancer {
			hard["services.nodeports"] = "1"
		}
	}
	if !sync.LoadBalancers {
		hard["services.loadbalancers"] = "0"
		if expose == v1alpha1.ExposeLoadBalancer {
			hard["services.loadbalancers"] = "1"
		}
	}
	return hard
}

var kindOrder = map[string]int{
	"Namespace":          0,
	"ClusterRole":        1,
	"ClusterRoleBinding": 2,
	"ServiceAccount":     3,
	"Role":               4,
	"RoleBinding":        5,
	"ConfigMap":          6,
	"Secret":             7,
	"ResourceQuota":      8,
	"LimitRange":         9,
	"NetworkPolicy":      10,
	"Service":            11,
	"StatefulSet":        12,
	"Ingress":            13,
}

func rank(kind string) int {
	if r, ok := kindOrder[kind]; ok {
		return r
	}
	return len(kindOrder)
}

// sortObjects puts objects in apply order: namespaces and RBAC first, the
// workload after what it mounts; others by kind, namespace and name.
func sortObjects(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if ra, rb := rank(a.GetKind()), rank(b.GetKind()); ra != rb {
			return ra < rb
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}
