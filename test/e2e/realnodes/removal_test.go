package realnodes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/localkube"
)

// hostTraces is what a cluster has on the host and its real node.
type hostTraces struct {
	namespace string
	podUIDs   []types.UID
	clusterIP []string
	volumes   map[string]string // claim (namespace/name) → the local volume's directory
}

// removalLeavesNothing gives the tenant a claim with data on it, notes
// everything the cluster has on the host, removes the cluster from Git and
// waits until none of it is left: no namespace, pods, claims or Services; its
// volumes emptied and released; no iptables rule on the node naming its
// namespace or Service addresses; no container, mount or kubelet pod
// directory of its pods.
func (s *story) removalLeavesNothing() {
	t := s.t
	s.writeToAClaim()
	traces := s.hostTraces("alpha")
	if len(traces.volumes) == 0 {
		t.Fatal("no local volume is bound to a claim of vc-alpha; the check of volumes would prove nothing")
	}
	// Each check must see its trace before the removal, or it proves nothing.
	if left := s.leftovers(traces); len(left) < 5 {
		t.Fatalf("before the removal the checks see only %v; each should see the cluster", left)
	}
	s.repo.Pull(t)
	s.repo.RemoveFiles(t, "alpha is no longer needed", "clusters/alpha.yaml")
	s.requestReconcile()
	s.waitFor(5*time.Minute, "everything of alpha gone from the host and its node", func() (bool, string) {
		left := s.leftovers(traces)
		return len(left) == 0, strings.Join(left, "; ")
	})
	var vc v1alpha1.VirtualCluster
	if err := s.admin.Get(s.ctx, client.ObjectKey{Name: "alpha"}, &vc); !apierrors.IsNotFound(err) {
		t.Errorf("VirtualCluster alpha is still there: %v", err)
	}
}

// writeToAClaim makes, as the tenant, a claim and a pod that mounts it,
// and writes a file onto its volume once bound.
func (s *story) writeToAClaim() {
	t, ctx := s.t, s.ctx
	tenant := s.tenantClient()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := tenant.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spec := localkube.AgnhostPod("writer", "pause")
	spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
	}}}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	spec.SecurityContext.FSGroup = ptr.To[int64](65532)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "writer", Namespace: "default"}, Spec: spec}
	if _, err := tenant.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.hostPod("alpha", "writer")
	dirs, err := s.host.RealNodeVolumeDirs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for claim, dir := range dirs {
		if strings.HasPrefix(claim, "vc-alpha/") {
			if err := os.WriteFile(filepath.Join(dir, "tenant-data"), []byte("kept only while the cluster is\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// hostTraces notes what the cluster has on the host now.
func (s *story) hostTraces(cluster string) hostTraces {
	t := s.t
	tr := hostTraces{namespace: "vc-" + cluster, volumes: map[string]string{}}
	pods, err := s.kube.CoreV1().Pods(tr.namespace).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		tr.podUIDs = append(tr.podUIDs, p.UID)
	}
	services, err := s.kube.CoreV1().Services(tr.namespace).List(s.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range services.Items {
		if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
			tr.clusterIP = append(tr.clusterIP, ip)
		}
	}
	dirs, err := s.host.RealNodeVolumeDirs(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for claim, dir := range dirs {
		if strings.HasPrefix(claim, tr.namespace+"/") {
			tr.volumes[claim] = dir
		}
	}
	return tr
}

// leftovers says which of the traces are still there.
func (s *story) leftovers(tr hostTraces) []string {
	var left []string
	ctx := s.ctx
	if _, err := s.kube.CoreV1().Namespaces().Get(ctx, tr.namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		left = append(left, fmt.Sprintf("namespace %s (%v)", tr.namespace, err))
	}
	pods, err := s.kube.CoreV1().Pods(tr.namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) > 0 {
		left = append(left, fmt.Sprintf("pods in %s (%v)", tr.namespace, err))
	}
	claims, err := s.kube.CoreV1().PersistentVolumeClaims(tr.namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(claims.Items) > 0 {
		left = append(left, fmt.Sprintf("claims in %s (%v)", tr.namespace, err))
	}
	services, err := s.kube.CoreV1().Services(tr.namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(services.Items) > 0 {
		left = append(left, fmt.Sprintf("Services in %s (%v)", tr.namespace, err))
	}
	left = append(left, s.volumeLeftovers(tr)...)
	return append(left, s.nodeLeftovers(tr)...)
}

// volumeLeftovers: a volume still claimed by the cluster, or with files.
func (s *story) volumeLeftovers(tr hostTraces) []string {
	var left []string
	now, err := s.host.RealNodeVolumeDirs(s.ctx)
	if err != nil {
		return []string{err.Error()}
	}
	for claim, dir := range tr.volumes {
		if now[claim] == dir {
			left = append(left, "volume "+dir+" still bound to claim "+claim)
		}
		if entries, err := os.ReadDir(dir); err != nil || len(entries) > 0 {
			left = append(left, fmt.Sprintf("volume %s of claim %s holds %d files (%v)", dir, claim, len(entries), err))
		}
	}
	return left
}

// nodeLeftovers looks inside the real node: iptables rules naming the
// cluster's namespace or Service addresses, its containers in containerd,
// mounts and kubelet directories of its pods.
func (s *story) nodeLeftovers(tr hostTraces) []string {
	var left []string
	rules, err := s.host.InNode(0, "iptables-save")
	if err != nil {
		return []string{err.Error()}
	}
	for _, line := range strings.Split(rules, "\n") {
		if strings.Contains(line, tr.namespace+"/") || containsAny(line, tr.clusterIP, "/32") {
			left = append(left, "iptables rule: "+line)
		}
	}
	containers, err := s.host.Ctr(0, "containers", "list", "-q", `labels."io.kubernetes.pod.namespace"==`+tr.namespace)
	if err != nil || strings.TrimSpace(containers) != "" {
		left = append(left, fmt.Sprintf("containers of %s in containerd: %q (%v)", tr.namespace, containers, err))
	}
	mounts, err := s.host.InNode(0, "cat", "/proc/self/mountinfo")
	if err != nil {
		return append(left, err.Error())
	}
	kubelet, err := s.host.KubeletDir(0)
	if err != nil {
		return append(left, err.Error())
	}
	for _, uid := range tr.podUIDs {
		if dir := filepath.Join(kubelet, "pods", string(uid)); exists(dir) {
			left = append(left, "kubelet directory "+dir)
		}
		if strings.Contains(mounts, string(uid)) {
			left = append(left, "mounts of pod "+string(uid))
		}
	}
	return left
}

func containsAny(line string, ips []string, suffix string) bool {
	for _, ip := range ips {
		if strings.Contains(line, " "+ip+suffix) {
			return true
		}
	}
	return false
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// requestReconcile asks the reconciler to read the Fleet's repository now.
func (s *story) requestReconcile() {
	s.patchFleet(func(fleet *v1alpha1.Fleet) {
		if fleet.Annotations == nil {
			fleet.Annotations = map[string]string{}
		}
		fleet.Annotations[v1alpha1.RequestedAtAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
	})
}

// patchFleet changes the story's Fleet with change, as a merge patch.
func (s *story) patchFleet(change func(*v1alpha1.Fleet)) {
	var fleet v1alpha1.Fleet
	key := client.ObjectKey{Namespace: warrenNamespace, Name: "platform"}
	if err := s.admin.Get(s.ctx, key, &fleet); err != nil {
		s.t.Fatal(err)
	}
	patch := client.MergeFrom(fleet.DeepCopy())
	change(&fleet)
	if err := s.admin.Patch(s.ctx, &fleet, patch); err != nil {
		s.t.Fatal(err)
	}
}
