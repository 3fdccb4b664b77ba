package apply

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// clusterObjects is roughly what rendering makes for one virtual cluster.
func clusterObjects(name string) []string {
	ns := "vc-" + name
	label := fmt.Sprintf("  labels: {warren.dev/cluster: %s}\n", name)
	meta := func(kind, api, n string) string {
		return fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata:\n  name: %s\n  namespace: %s\n%s", api, kind, n, ns, label)
	}
	return []string{
		fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n%s", ns, label),
		meta("ConfigMap", "v1", name+"-init-manifests") + "data: {a.yaml: 'kind: ConfigMap'}\n",
		meta("ConfigMap", "v1", name+"-syncer") + "data: {syncer.yaml: 'name: " + name + "'}\n",
		meta("Service", "v1", name) + "spec: {ports: [{name: https, port: 443, targetPort: 6443}], selector: {app: " + name + "}}\n",
		meta("Service", "v1", name+"-headless") + "spec: {clusterIP: None, ports: [{name: https, port: 6443}], selector: {app: " + name + "}}\n",
		meta("ServiceAccount", "v1", name+"-syncer"),
		meta("Role", "rbac.authorization.k8s.io/v1", name+"-syncer") + "rules: [{apiGroups: [''], resources: [pods], verbs: [get, list, watch, create, update, delete]}]\n",
		meta("RoleBinding", "rbac.authorization.k8s.io/v1", name+"-syncer") + "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: " + name + "-syncer}\nsubjects: [{kind: ServiceAccount, name: " + name + "-syncer, namespace: " + ns + "}]\n",
		meta("StatefulSet", "apps/v1", name) + "spec:\n  serviceName: " + name + "-headless\n  selector: {matchLabels: {app: " + name + "}}\n  template:\n    metadata: {labels: {app: " + name + "}}\n    spec: {containers: [{name: k3s, image: rancher/k3s}]}\n",
		meta("ResourceQuota", "v1", name) + "spec: {hard: {pods: '20'}}\n",
		meta("LimitRange", "v1", name) + "spec: {limits: [{type: Container, default: {cpu: 500m}}]}\n",
		meta("NetworkPolicy", "networking.k8s.io/v1", name+"-isolation") + "spec: {podSelector: {}, policyTypes: [Ingress]}\n",
	}
}

// BenchmarkFleetOf500Clusters applies 500 clusters (12 objects each) cold,
// then reconciles again with nothing changed: that no-op must make zero
// write requests and take well under 2 s.
func BenchmarkFleetOf500Clusters(b *testing.B) {
	if host == nil {
		b.Skip("needs a local control plane")
	}
	c, err := client.New(host.Config, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var docs []string
	for i := range 500 {
		docs = append(docs, clusterObjects(fmt.Sprintf("bench-%03d", i))...)
	}
	resources := []string{"namespaces", "configmaps", "services", "serviceaccounts", "roles", "rolebindings",
		"statefulsets", "resourcequotas", "limitranges", "networkpolicies"}
	for i := 0; i < b.N; i++ {
		a, err := New(c, Owner{Namespace: "warren-system", Name: fmt.Sprintf("bench-%d", i)}, Options{Concurrency: 8})
		if err != nil {
			b.Fatal(err)
		}
		objs := objects(b, docs...)
		start := time.Now()
		res, err := a.Apply(b.Context(), objs, nil)
		if err != nil {
			b.Fatal(err)
		}
		cold := time.Since(start)

		before := writeRequests(b, resources...)
		start = time.Now()
		again, err := a.Apply(b.Context(), objects(b, docs...), res.Inventory)
		if err != nil {
			b.Fatal(err)
		}
		noop := time.Since(start)
		writes := writeRequests(b, resources...) - before
		if again.Written() != 0 || writes != 0 {
			b.Fatalf("no-op reconcile wrote %d objects, %v write requests", again.Written(), writes)
		}
		b.ReportMetric(float64(len(objs)), "objects")
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(noop.Seconds(), "noop-s")
		b.ReportMetric(writes, "noop-writes")
		b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
		b.Logf("%d objects: cold apply %v, no-op %v with %v writes; peak RSS of the test process %.0f MiB",
			len(objs), cold, noop, writes, peakRSSMiB())
	}
}

// peakRSSMiB is this process's peak resident set (VmHWM), which excludes
// the control plane's own processes.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
