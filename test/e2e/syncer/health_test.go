package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An operator can probe the syncer and scrape per-kind queue depth and sync
// latency.
func TestHealthReadinessAndMetrics(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "probed")
	create(t, ctx, w.virtualC, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		testkit.Eventually(t, 30*time.Second, path+" answers 200", func() (bool, string) {
			code, body := get("http://" + w.health + path)
			return code == http.StatusOK, body
		})
	}
	testkit.Eventually(t, 30*time.Second, "per-kind metrics", func() (bool, string) {
		_, body := get("http://" + w.metricsAddr + "/metrics")
		for _, want := range []string{
			`workqueue_depth{controller="pod",name="pod",`, `controller_runtime_reconcile_time_seconds_count{controller="pod"}`,
			`workqueue_depth{controller="pod-status",name="pod-status",`, `controller_runtime_reconcile_time_seconds_count{controller="pod-status"}`,
		} {
			if !strings.Contains(body, want) {
				return false, "missing " + want
			}
		}
		return true, ""
	})
}
