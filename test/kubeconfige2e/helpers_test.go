package kubeconfige2e

import (
	"bufio"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	"k8s.io/client-go/kubernetes"

	"github.com/warren-dev/warren/test/localkube"
)

type metaLocalRef = meta.LocalObjectReference

// fastRetries keeps a failed reconcile's retry quick in tests.
func fastRetries() fluxcontroller.RateLimiterOptions {
	return fluxcontroller.RateLimiterOptions{MinRetryDelay: 200 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// writeRequests sums the API server's apiserver_request_total for every verb
// that writes, on the given resources' main endpoint (subresources such as
// status left out), read from its own /metrics.
func writeRequests(t *testing.T, plane *localkube.Plane, resources ...string) float64 {
	t.Helper()
	body, err := kubernetes.NewForConfigOrDie(plane.Config).CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	if err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	want := map[string]bool{}
	for _, r := range resources {
		want[r] = true
	}
	var total float64
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndex(line, "}")
		labels := map[string]string{}
		for _, m := range label.FindAllStringSubmatch(line[:end], -1) {
			labels[m[1]] = m[2]
		}
		switch labels["verb"] {
		case "GET", "LIST", "WATCH", "CONNECT":
			continue
		}
		if !want[labels["resource"]] || labels["subresource"] != "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			t.Fatalf("parse %q: %v", line, err)
		}
		total += v
	}
	return total
}
