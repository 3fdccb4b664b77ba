package localkube_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/test/localkube"
)

func TestADeploymentRunsOnFakeNodesAndAClaimIsBound(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1})
	client := kubernetes.NewForConfigOrDie(plane.Config)
	ctx := t.Context()

	labels := map[string]string{"app": "web"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := client.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, time.Minute, "the claim bound", func() (bool, string) {
		pvc, err := client.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return pvc.Status.Phase == corev1.ClaimBound, "claim is " + string(pvc.Status.Phase)
	})
	testkit.Eventually(t, time.Minute, "three pods Running on the fake node", func() (bool, string) {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err.Error()
		}
		running := 0
		for _, pod := range pods.Items {
			if pod.Status.Phase == corev1.PodRunning && pod.Spec.NodeName == localkube.FakeNodeName(0) {
				running++
			}
		}
		return running == 3 && len(pods.Items) == 3,
			strconv.Itoa(running) + " of " + strconv.Itoa(len(pods.Items)) + " pods Running on " + localkube.FakeNodeName(0)
	})
}

func TestTwoPlanesRunAtOnceAndStopCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control planes")
	}
	ctx := t.Context()
	a, err := localkube.Start(ctx, localkube.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := localkube.Start(ctx, localkube.Options{ServiceCIDR: "10.97.0.0/16"})
	if err != nil {
		_ = a.Stop()
		t.Fatal(err)
	}
	if a.Config.Host == b.Config.Host {
		t.Fatalf("both planes serve at %s", a.Config.Host)
	}
	// Each plane is its own cluster: what one holds, the other does not.
	ca, cb := kubernetes.NewForConfigOrDie(a.Config), kubernetes.NewForConfigOrDie(b.Config)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}}
	if _, err := ca.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.CoreV1().Namespaces().Get(ctx, "only-in-a", metav1.GetOptions{}); err == nil {
		t.Fatal("plane b sees plane a's namespace")
	}
	// The API server publishes its own Service shortly after it is ready.
	var svc *corev1.Service
	testkit.Eventually(t, 30*time.Second, "plane b's kubernetes Service", func() (bool, string) {
		if svc, err = cb.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if !strings.HasPrefix(svc.Spec.ClusterIP, "10.97.") {
		t.Fatalf("plane b's kubernetes Service has ClusterIP %s, outside its service CIDR", svc.Spec.ClusterIP)
	}

	for _, p := range []*localkube.Plane{a, b} {
		pids, dir := p.PIDs(), p.Dir
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d is still alive after Stop", pid)
			}
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data dir %s is still there after Stop", dir)
		}
	}
}

func TestAMissingToolSaysWhatToRun(t *testing.T) {
	_, err := localkube.Start(context.Background(), localkube.Options{ToolsDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "etcd is missing") || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("want an error naming the missing binary and `make tools`, got: %v", err)
	}
}

func TestATakenPortIsNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the tools")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = localkube.Start(context.Background(), localkube.Options{APIServerPort: port})
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(port)) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("want an error naming port %d as in use, got: %v", port, err)
	}
}
