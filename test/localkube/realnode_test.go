package localkube_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

// realNodes skips t only when WARREN_REAL_NODES=0 says so, loudly.
func realNodes(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane with a real node")
	}
	if os.Getenv("WARREN_REAL_NODES") == "0" {
		t.Skip("SKIPPED: WARREN_REAL_NODES=0 turns off the real-node tests; nothing here proves pods really run")
	}
}

func TestPodsRunOnARealNodeAndReachEachOtherAndTheAPI(t *testing.T) {
	realNodes(t)
	plane := localkube.ForTest(t, localkube.Options{RealNodes: 1})
	leftovers := plane.LeftoversCheck()
	client := kubernetes.NewForConfigOrDie(plane.Config)
	ctx := t.Context()

	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       localkube.AgnhostPod("web", "netexec", "--http-port=8080", "--udp-port=-1"),
			},
		},
	}
	must(t, create(ctx, client, web))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	must(t, err)

	// A client pod that mounts a claim of the local class, and the API
	// through its projected token.
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	_, err = client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{})
	must(t, err)
	spec := localkube.AgnhostPod("client", "netexec", "--http-port=8080", "--udp-port=-1")
	spec.SecurityContext.FSGroup = ptr.To[int64](2000)
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
	}}}
	inCluster := localkube.AgnhostPod("api", "inclusterclient", "--poll_interval=1")
	_, err = client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: "default"}, Spec: spec}, metav1.CreateOptions{})
	must(t, err)
	_, err = client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default"}, Spec: inCluster}, metav1.CreateOptions{})
	must(t, err)

	clientIP := runningIP(t, client, "client")
	// The host reaches pods through the node; the client pod dials the
	// Service's ClusterIP (kube-proxy's rules in the node) and answers
	// with the web pod's name.
	hostnames := map[string]bool{}
	testkit.Eventually(t, 2*time.Minute, "both web pods answering through the ClusterIP", func() (bool, string) {
		name, err := localkube.Dial(clientIP, svc.Spec.ClusterIP, 80)
		if err != nil {
			return false, err.Error()
		}
		hostnames[name] = true
		return len(hostnames) == 2, fmt.Sprintf("answered by %v", hostnames)
	})
	for name := range hostnames {
		if !strings.HasPrefix(name, "web-") {
			t.Errorf("the ClusterIP answered with %q, not a web pod's name", name)
		}
	}

	runningIP(t, client, "api")
	testkit.Eventually(t, time.Minute, "the in-cluster client reaching the API with its token", func() (bool, string) {
		logs, err := client.CoreV1().Pods("default").GetLogs("api", &corev1.PodLogOptions{}).DoRaw(ctx)
		text := string(logs)
		return err == nil && strings.Count(text, "calling /healthz") >= 3 && !strings.Contains(text, "status=failed") &&
			!strings.Contains(text, "authz_header=<empty>"), fmt.Sprintf("%v: %s", err, text)
	})

	must(t, plane.Stop())
	if left := leftovers(); len(left) > 0 {
		t.Errorf("Stop left behind: %s", strings.Join(left, "; "))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func create(ctx context.Context, client kubernetes.Interface, d *appsv1.Deployment) error {
	_, err := client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
	return err
}

// runningIP waits until the pod runs and returns its address.
func runningIP(t *testing.T, client kubernetes.Interface, name string) string {
	t.Helper()
	var pod *corev1.Pod
	testkit.Eventually(t, 2*time.Minute, "pod "+name+" Running", func() (bool, string) {
		var err error
		pod, err = client.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "", fmt.Sprintf("%+v", pod.Status)
	})
	return pod.Status.PodIP
}
