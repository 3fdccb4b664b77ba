package realnodes

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/syncer/translate"
)

// clustersAreIsolated: with alpha and beta on the same real node, whose
// kube-router enforces the NetworkPolicies warren rendered, alpha's client
// pod tries beta's API server (its pod and its Service), beta's web Service
// and a web pod of beta's, with real packets (`agnhost connect`, exec'd
// through alpha's own kubeconfig as the tenant would): every attempt is
// refused. The same probes from beta's own client reach all of them (they
// listen, and the network carries them), and alpha's client reaches alpha's
// own: the refusal is the policy's, not a broken network.
func (s *story) clustersAreIsolated(t *testing.T) {
	s.t = t
	alphaKubeconfig := s.kubeIn
	s.tenantListsNamespaces("beta")
	betaKubeconfig := s.kubeIn
	s.runWeb(s.tenantClient())
	s.kubeIn = alphaKubeconfig

	alpha, beta := s.targets("alpha"), s.targets("beta")
	for _, tg := range beta {
		s.probe(betaKubeconfig, "beta", tg, true)
	}
	for _, tg := range alpha {
		s.probe(alphaKubeconfig, "alpha", tg, true)
	}
	for _, tg := range beta {
		s.probe(alphaKubeconfig, "alpha", tg, false)
	}
}

// target is an address a probe dials, and what it is.
type target struct{ what, addr string }

// targets are a cluster's API server (its pod, its host Service) and its
// tenant's web Service and one web pod.
func (s *story) targets(cluster string) []target {
	t, ctx, ns := s.t, s.ctx, "vc-"+cluster
	api := s.controlPlanePod(cluster)
	apiSvc, err := s.kube.CoreV1().Services(ns).Get(ctx, cluster, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	webName := translate.Translator{Cluster: cluster, HostNamespace: ns}.HostName("default", "web")
	web, err := s.kube.CoreV1().Services(ns).Get(ctx, webName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	webIP := web.Spec.ClusterIP
	pods, err := s.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("%s's web pods on the host: %v %v", cluster, pods, err)
	}
	var webPod string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			webPod = p.Status.PodIP
		}
	}
	return []target{
		{cluster + "'s API server pod", net.JoinHostPort(api.Status.PodIP, "6443")},
		{cluster + "'s API Service", net.JoinHostPort(apiSvc.Spec.ClusterIP, "443")},
		{cluster + "'s web Service", net.JoinHostPort(webIP, "80")},
		{cluster + "'s web pod", net.JoinHostPort(webPod, "8080")},
	}
}

// probe dials tg with a TCP connection from the client pod of the cluster
// whose kubeconfig is given, until it connects (reach) or until it is
// refused three times in a row; a connection after a refusal fails at once.
func (s *story) probe(kubeconfig, from string, tg target, reach bool) {
	s.t.Helper()
	want := "to reach"
	if !reach {
		want = "to be refused by"
	}
	refusals, through := 0, 0
	s.waitFor(2*time.Minute, fmt.Sprintf("%s's client pod %s %s (%s)", from, want, tg.what, tg.addr), func() (bool, string) {
		_, errOut, code := s.run(kubeconfig, "", "exec", "client", "--", "/agnhost", "connect", "--timeout=3s", tg.addr)
		refused := code == 1 && (strings.Contains(errOut, "REFUSED") || strings.Contains(errOut, "TIMEOUT"))
		switch {
		case reach:
			return code == 0, "exit " + strconv.Itoa(code) + ": " + errOut
		case code == 0 && refusals > 0:
			s.t.Fatalf("%s's client pod reached %s (%s) after it had been refused", from, tg.what, tg.addr)
		case code == 0:
			through++
		case refused:
			refusals++
		default:
			refusals = 0
		}
		return refusals >= 3, fmt.Sprintf("%d connections got through, %d refusals in a row; last exit %d: %s", through, refusals, code, errOut)
	})
}
