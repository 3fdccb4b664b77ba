package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/internal/localplane"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/kubeconfig"
)

// On real nodes the demo then uses the unsealed kubeconfig as the tenant
// would: it lists the namespaces, runs a Deployment of agnhost behind a
// Service and reaches it through the Service's ClusterIP from another pod.

// tenantClient connects with the kubeconfig in s. Its server is the API
// Service's name inside the host, which only resolves in there; the demo,
// outside the host's pods, dials the control plane pod's address with that
// name still verified against the cluster's CA.
func (d *demo) tenantClient(ctx context.Context, s *corev1.Secret, vc *v1alpha1.VirtualCluster) (kubernetes.Interface, error) {
	var pod corev1.Pod
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: vc.Status.HostNamespace, Name: vc.Name + "-0"}, &pod); err != nil {
		return nil, fmt.Errorf("finding %s's control plane pod: %w", vc.Name, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(s.Data[kubeconfig.SecretKey])
	if err != nil {
		// Not wrapped: a parse error may quote the credentials it choked on.
		return nil, fmt.Errorf("the unsealed Secret %s/%s does not hold a kubeconfig", s.Namespace, s.Name)
	}
	name := strings.TrimSuffix(strings.TrimPrefix(cfg.Host, "https://"), ":443")
	cfg.Host = "https://" + pod.Status.PodIP + ":6443"
	cfg.TLSClientConfig.ServerName = name
	return kubernetes.NewForConfig(cfg)
}

// showTenant is the tenant's first minutes in the cluster.
func (d *demo) showTenant(ctx context.Context, s *corev1.Secret, vc *v1alpha1.VirtualCluster) error {
	tenant, err := d.tenantClient(ctx, s, vc)
	if err != nil {
		return err
	}
	var names []string
	err = d.poll(ctx, 250*time.Millisecond, func() (bool, error) {
		list, err := tenant.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil // the tenant's access may still be on its way
		}
		names = names[:0]
		for _, ns := range list.Items {
			names = append(names, ns.Name)
		}
		return true, nil
	}, func() error {
		return fmt.Errorf("kubectl get ns through %s's kubeconfig did not answer within %s", vc.Name, d.opts.Timeout)
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	d.say("as the tenant, with that kubeconfig: kubectl get ns -> %s", strings.Join(names, " "))
	d.say("the commit became a cluster answering kubectl in %s", time.Since(d.committed).Round(100*time.Millisecond))
	if err := d.runWeb(ctx, tenant); err != nil {
		return err
	}
	return d.reachWeb(ctx, tenant)
}

// webLabels select the demo's Deployment.
var webLabels = map[string]string{"app": "web"}

// agnhost is a pod spec the restricted Pod Security level admits, with the
// requests the cluster's quota asks for.
func agnhost(name string) corev1.PodSpec {
	spec := localplane.AgnhostPod(name, "netexec", "--http-port=8080", "--udp-port=-1")
	spec.Containers[0].Resources.Requests = corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi"),
	}
	return spec
}

// runWeb creates, as the tenant, 2 agnhost replicas behind Service web and
// a client pod, and waits until they run on the real node.
func (d *demo) runWeb(ctx context.Context, tenant kubernetes.Interface) error {
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: webLabels}, Spec: agnhost("web")},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: webLabels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	caller := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "caller", Namespace: "default"}, Spec: agnhost("caller")}
	if _, err := tenant.AppsV1().Deployments("default").Create(ctx, web, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Deployment web as the tenant: %w", err)
	}
	if _, err := tenant.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating Service web as the tenant: %w", err)
	}
	if _, err := tenant.CoreV1().Pods("default").Create(ctx, caller, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating pod caller as the tenant: %w", err)
	}
	d.say("as the tenant: created Deployment web (2 agnhost replicas), Service web and pod caller")
	var pods []corev1.Pod
	err := d.poll(ctx, 500*time.Millisecond, func() (bool, error) {
		list, err := tenant.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) == 3 && allRunning(pods), nil
	}, func() error { return fmt.Errorf("the tenant's 3 pods are not all Running within %s", d.opts.Timeout) })
	if err != nil {
		return err
	}
	d.say("kubectl get pods -o wide, in the virtual cluster:")
	for _, p := range pods {
		fmt.Fprintf(d.out, "    %-24s %-8s %-15s %s\n", p.Name, p.Status.Phase, p.Status.PodIP, p.Spec.NodeName)
	}
	return nil
}

func allRunning(pods []corev1.Pod) bool {
	for _, p := range pods {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return false
		}
	}
	return true
}

// reachWeb has the caller pod fetch /hostname through Service web's
// ClusterIP until both replicas have answered.
func (d *demo) reachWeb(ctx context.Context, tenant kubernetes.Interface) error {
	svc, err := tenant.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	caller, err := tenant.CoreV1().Pods("default").Get(ctx, "caller", metav1.GetOptions{})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	err = d.poll(ctx, 250*time.Millisecond, func() (bool, error) {
		if name, err := localplane.Dial(caller.Status.PodIP, svc.Spec.ClusterIP, 80); err == nil {
			seen[name] = true
		}
		return len(seen) == 2, nil
	}, func() error {
		return fmt.Errorf("Service web (%s) answered from %d of 2 replicas within %s", svc.Spec.ClusterIP, len(seen), d.opts.Timeout)
	})
	if err != nil {
		return err
	}
	answered := make([]string, 0, len(seen))
	for name := range seen {
		answered = append(answered, name)
	}
	sort.Strings(answered)
	d.say("from pod caller, http://%s (Service web's ClusterIP) answered from %s: real packets on a real node",
		svc.Spec.ClusterIP, strings.Join(answered, " and "))
	return nil
}
