package kubeconfige2e

import (
	"bufio"
	"context"
	"io/fs"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	fluxcontroller "github.com/fluxcd/pkg/runtime/controller"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/config"

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

// installCRDs applies warren's CRDs to the plane and waits until they are
// served.
func installCRDs(t *testing.T, ctx context.Context, plane *localkube.Plane) {
	t.Helper()
	dyn := dynamic.NewForConfigOrDie(plane.Config).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	entries, err := fs.Glob(config.CRDs, "crd/bases/*.yaml")
	if err != nil || len(entries) == 0 {
		t.Fatalf("warren's CRDs: %v", err)
	}
	for _, path := range entries {
		data, err := fs.ReadFile(config.CRDs, path)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := dyn.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "test", Force: &force}); err != nil {
			t.Fatalf("installing %s: %v", path, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			crd, err := dyn.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established", obj.GetName())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
