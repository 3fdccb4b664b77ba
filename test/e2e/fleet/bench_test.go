package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
)

// benchClusters is the fleet size of the reconciler benchmark (issue 4:
// 500); WARREN_BENCH_CLUSTERS overrides it for a quick look.
func benchClusters(b *testing.B) int {
	if v := os.Getenv("WARREN_BENCH_CLUSTERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("WARREN_BENCH_CLUSTERS=%q: want a number above 1", v)
		}
		return n
	}
	return 500
}

// BenchmarkFleetOf500Clusters measures warren-reconciler, run as a process,
// on a generated repository of 500 clusters under one permissive
// TenantPolicy, read over file://:
//
//   - cold-s: from creating the Fleet to the Fleet Ready at that revision
//     (every VirtualCluster, PKI Secret and host object applied);
//   - rss-MB: the process's peak resident set (VmHWM) over the whole run;
//   - noop-s and noop-writes: one reconcile started by the Fleet's interval
//     with nothing changed, its duration (the reconciler's own
//     gotk_reconcile_duration_seconds) and the write requests the API server
//     counted meanwhile (apiserver_request_total, every verb but GET, LIST,
//     WATCH; the API server's own lease renewals left out);
//   - commit-to-applied-s: from pushing a commit that changes one cluster
//     (and setting warren.dev/requested-at, as a Git webhook would) to that
//     cluster's changed object on the host; fleet-ready-s until the Fleet
//     is Ready at the new revision.
//
// The host is a bare plane (etcd and kube-apiserver, no controller manager,
// no kwok): it measures the reconciler and the API server, not StatefulSet
// pods, which kwok only simulates anyway.
func BenchmarkFleetOf500Clusters(b *testing.B) {
	if testing.Short() {
		b.Skip("needs a local control plane")
	}
	n := benchClusters(b)
	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	plane, err := localkube.Start(startCtx, localkube.Options{})
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = plane.Stop() })
	if err := testkit.InstallCRDs(ctx, plane.Config); err != nil {
		b.Fatal(err)
	}
	h := newHost(b, plane)

	repo := gitserver.NewRepo(b, b.TempDir(), "bench")
	files := map[string]string{"policies/bench.yaml": `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: bench
spec:
  tenant: bench
  maxClusters: 100000
`}
	name := func(i int) string { return fmt.Sprintf("bench-%04d", i) }
	for i := range n {
		files[clusterFile(name(i))] = clusterYAML(name(i), "bench", "1")
	}
	for p, content := range files {
		full := filepath.Join(repo.WorkDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	repo.Git(b, "add", "--all")
	repo.Git(b, "commit", "--quiet", "-m", fmt.Sprintf("%d clusters", n))
	repo.Git(b, "push", "--quiet", "origin", gitserver.DefaultBranch)
	sha := repo.Git(b, "rev-parse", "HEAD")

	var flags []string
	if qps := os.Getenv("WARREN_BENCH_QPS"); qps != "" {
		flags = append(flags, "--kube-api-qps="+qps, "--kube-api-burst="+qps)
	}
	rec := startReconciler(b, plane, reconcilerOptions{metrics: true, flags: flags})
	testkit.Eventually(b, time.Minute, "the reconciler's metrics endpoint", func() (bool, string) {
		_, err := scrape(rec.Metrics)
		return err == nil, fmt.Sprint(err)
	})

	b.ResetTimer()
	for range b.N {
		// Cold: a new Fleet, nothing on the host.
		interval := 20 * time.Second
		requestsBefore, err := apiRequests(ctx, plane)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		fleet := h.createFleet("bench", fleetSpec{url: repo.FileURL(), interval: interval})
		f := h.waitFleetApplied(fleet, sha, 15*time.Minute)
		cold := time.Since(start)
		if f.Status.AdmittedClusters != n {
			b.Fatalf("admitted %d clusters, want %d: %s", f.Status.AdmittedClusters, n, fleetState(f))
		}
		b.ReportMetric(cold.Seconds(), "cold-s")
		requestsAfter, err := apiRequests(ctx, plane)
		if err != nil {
			b.Fatal(err)
		}
		requests := map[string]float64{}
		for k, v := range requestsAfter {
			if d := v - requestsBefore[k]; d > 0 {
				requests[k] = d
			}
		}
		b.Logf("cold reconcile of %d clusters: %s; inventory %d objects; API requests by verb (and dry run): %v", n, cold.Round(time.Millisecond), len(f.Status.Inventory.Entries), requests)

		// No-op: wait for the reconcile the interval starts.
		noopDur, writes, byResource := measureNoop(b, plane, rec, interval)
		b.ReportMetric(noopDur.Seconds(), "noop-s")
		b.ReportMetric(writes, "noop-writes")
		b.Logf("no-op reconcile: %s, %v write requests %v", noopDur.Round(time.Millisecond), writes, byResource)

		// One cluster changes in Git.
		changed := name(n / 2)
		quotaCPU := func() string {
			q, err := h.kube.CoreV1().ResourceQuotas("vc-"+changed).Get(ctx, changed, metav1.GetOptions{})
			if err != nil {
				b.Fatalf("the ResourceQuota of %s: %v", changed, err)
			}
			hard := q.Spec.Hard["requests.cpu"]
			return hard.String()
		}
		cpuBefore := quotaCPU()
		start = time.Now()
		sha2 := repo.CommitFiles(b, changed+" gets 2 CPUs", map[string]string{clusterFile(changed): clusterYAML(changed, "bench", "2")})
		h.annotate(fleet)
		var applied time.Duration
		testkit.Eventually(b, 5*time.Minute, "the changed cluster's ResourceQuota", func() (bool, string) {
			now := quotaCPU()
			if now != cpuBefore {
				applied = time.Since(start)
				return true, ""
			}
			return false, "requests.cpu " + now
		})
		h.waitFleetApplied(fleet, sha2, 5*time.Minute)
		ready := time.Since(start)
		b.ReportMetric(applied.Seconds(), "commit-to-applied-s")
		b.ReportMetric(ready.Seconds(), "fleet-ready-s")
		b.Logf("one-cluster commit: its objects applied after %s, Fleet Ready after %s", applied.Round(time.Millisecond), ready.Round(time.Millisecond))

		hwm, err := peakRSS(rec.PID())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(hwm)/(1<<20), "rss-MB")
		b.Logf("reconciler peak RSS: %d MiB", hwm>>20)
	}
}

// measureNoop waits for the next reconcile of the Fleet controller (started
// by the interval) and returns its duration and the write requests the API
// server counted while it ran.
func measureNoop(b *testing.B, plane *localkube.Plane, rec *reconcilerProcess, interval time.Duration) (time.Duration, float64, map[string]float64) {
	b.Helper()
	ctx := context.Background()
	fleetReconciles := func() (count, seconds float64) {
		body, err := scrape(rec.Metrics)
		if err != nil {
			b.Fatal(err)
		}
		counts, err := localkube.SumCounter(body, "gotk_reconcile_duration_seconds_count", fleetKind)
		if err != nil {
			b.Fatal(err)
		}
		sums, err := localkube.SumCounter(body, "gotk_reconcile_duration_seconds_sum", fleetKind)
		if err != nil {
			b.Fatal(err)
		}
		return counts["Fleet"], sums["Fleet"]
	}
	// Let the reconciles after the cold one (and their status writes)
	// settle: wait for one started by the interval, then measure the next.
	count0, _ := fleetReconciles()
	testkit.Eventually(b, 3*interval, "an interval-started reconcile", func() (bool, string) {
		now, _ := fleetReconciles()
		return now > count0, fmt.Sprintf("%v reconciles", now)
	})
	count0, sum0 := fleetReconciles()
	before, err := plane.WriteCounts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	testkit.Eventually(b, 3*interval, "an interval-started no-op reconcile", func() (bool, string) {
		now, _ := fleetReconciles()
		return now > count0, fmt.Sprintf("%v reconciles", now)
	})
	after, err := plane.WriteCounts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	count1, sum1 := fleetReconciles()
	byResource := map[string]float64{}
	var total float64
	for k, v := range after {
		if strings.HasSuffix(k, " leases") {
			continue // kube-apiserver renews its own identity lease; warren runs without leader election here
		}
		if d := v - before[k]; d > 0 {
			byResource[k] = d
			total += d
		}
	}
	return time.Duration((sum1 - sum0) / (count1 - count0) * float64(time.Second)), total, byResource
}

func fleetKind(l map[string]string) (string, bool) { return l["kind"], l["kind"] == "Fleet" }

// scrape reads a Prometheus endpoint.
func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return sb.String(), nil
}

// peakRSS is a process's peak resident set size in bytes (VmHWM).
func peakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
