package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
)

// benchClusters is the fleet size of the reconciler benchmark: n unless
// WARREN_BENCH_CLUSTERS overrides it (for a quick look).
func benchClusters(b *testing.B, n int) int {
	if v := os.Getenv("WARREN_BENCH_CLUSTERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			b.Fatalf("WARREN_BENCH_CLUSTERS=%q: want a number above 1", v)
		}
		return n
	}
	return n
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
//     is Ready at the new revision;
//   - ssa-limit-s: the API server's own limit, measured last in the same
//     run with the reconciler stopped: as many objects as the cold start
//     applied (a namespace and 14 ConfigMaps of about 2 KB per cluster),
//     server-side applied straight from the benchmark, 8 at a time, with
//     no client-side rate limit; cold-vs-limit is cold-s over it.
//
// Every phase logs the API requests it caused, by verb.
// WARREN_BENCH_HEAP_PROFILE=<dir> saves the reconciler's heap profiles
// there (see heapAtPeaks); GOMEMLIMIT, which the reconciler inherits,
// replaces its default soft memory limit (off: none).
//
// The host is a bare plane (etcd and kube-apiserver, no controller manager,
// no kwok): it measures the reconciler and the API server, not StatefulSet
// pods, which kwok only simulates anyway.
func BenchmarkFleetOf500Clusters(b *testing.B) { benchmarkFleet(b, benchClusters(b, 500)) }

// BenchmarkFleetOf5000Clusters is the same story at 5,000 clusters (75,000
// host objects on one plane). It takes most of an hour on 2 cores, so it
// runs only with WARREN_BENCH_LARGE=1 (make bench sets it).
func BenchmarkFleetOf5000Clusters(b *testing.B) {
	if os.Getenv("WARREN_BENCH_LARGE") == "" {
		b.Skip("5,000 clusters take most of an hour here: set WARREN_BENCH_LARGE=1 (make bench does)")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// The soft limit the reconciler sets itself (90 %, automemlimit)
		// in a container limited to 533 MiB, which keeps its whole RSS,
		// binary included, under the 5,000-cluster target of 600 MB; run
		// here outside any cgroup, it would have none. 540 MiB (a 600 MiB
		// container) peaked at 604 MiB, 480 MiB at 543 MiB.
		b.Setenv("GOMEMLIMIT", "480MiB")
	}
	benchmarkFleet(b, 5000)
}

func benchmarkFleet(b *testing.B, n int) {
	if testing.Short() {
		b.Skip("needs a local control plane")
	}
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
	repo, sha := benchRepo(b, n)

	var flags []string
	if qps := os.Getenv("WARREN_BENCH_QPS"); qps != "" {
		flags = append(flags, "--kube-api-qps="+qps, "--kube-api-burst="+qps)
	}
	profileDir := os.Getenv("WARREN_BENCH_HEAP_PROFILE")
	pprofAddr := ""
	if profileDir != "" {
		pprofAddr = testkit.FreeAddr(b)
		flags = append(flags, "--pprof-bind-address="+pprofAddr)
	}
	b.Logf("the reconciler's Go soft memory limit: %s", softLimit())
	rec := startReconciler(b, plane, reconcilerOptions{metrics: true, flags: flags})
	stopProfiles := func() {}
	if profileDir != "" {
		stopProfiles = heapAtPeaks(b, rec, pprofAddr, profileDir)
	}
	testkit.Eventually(b, time.Minute, "the reconciler's metrics endpoint", func() (bool, string) {
		_, err := scrape(rec.Metrics)
		return err == nil, fmt.Sprint(err)
	})
	// A cold start of n clusters: about 0.1 s each on an idle machine, 0.6 s
	// at load 10-20 (the 5,000-cluster run), with a margin over that.
	coldTimeout := max(15*time.Minute, time.Duration(n)*900*time.Millisecond)

	b.ResetTimer()
	for range b.N {
		// Cold: a new Fleet, nothing on the host.
		interval := 20 * time.Second
		if n > 1000 {
			interval = time.Minute
		}
		phase := h.startPhase()
		phasesBefore := phaseSeconds(b, rec)
		start := time.Now()
		fleet := h.createFleet("bench", fleetSpec{url: repo.FileURL(), interval: interval})
		f := h.waitFleetApplied(fleet, sha, coldTimeout)
		cold := time.Since(start)
		if f.Status.AdmittedClusters != n {
			b.Fatalf("admitted %d clusters, want %d: %s", f.Status.AdmittedClusters, n, fleetState(f))
		}
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.Logf("cold reconcile of %d clusters: %s; inventory %d objects; API requests by verb (and dry run): %v", n, cold.Round(time.Millisecond), f.Status.Inventory.Objects, phase.requests())
		b.Logf("cold reconcile, seconds by phase (every reconcile until Ready): %s", phaseSeconds(b, rec).since(phasesBefore))
		rssAfterCold, _ := peakRSS(rec.PID())
		b.Logf("reconciler peak RSS after the cold start: %d MiB", rssAfterCold>>20)

		// No-op: wait for the reconcile the interval starts.
		noop := measureNoop(b, plane, rec, interval)
		b.ReportMetric(noop.took.Seconds(), "noop-s")
		b.ReportMetric(noop.writes, "noop-writes")
		b.Logf("no-op reconcile: %s, %v write requests %v; API requests by verb while it ran: %v; seconds by phase: %s", noop.took.Round(time.Millisecond), noop.writes, noop.byResource, noop.requests, noop.phases)

		phasesBefore = phaseSeconds(b, rec)
		h.measureOneClusterCommit(b, repo, fleet, n)
		b.Logf("one-cluster commit, seconds by phase (every reconcile until Ready): %s", phaseSeconds(b, rec).since(phasesBefore))

		hwm, err := peakRSS(rec.PID())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(hwm)/(1<<20), "rss-MB")
		b.Logf("reconciler peak RSS: %d MiB", hwm>>20)

		// The API server's own limit, with the reconciler stopped.
		stopProfiles()
		rec.stop()
		limit := h.measureSSALimit(b, f.Status.Inventory.Objects, n)
		b.ReportMetric(limit.Seconds(), "ssa-limit-s")
		b.ReportMetric(cold.Seconds()/limit.Seconds(), "cold-vs-limit")
	}
}

// benchClusterName is the i-th cluster of the benchmark's fleet.
func benchClusterName(i int) string { return fmt.Sprintf("bench-%04d", i) }

// benchRepo makes the benchmark's repository: one permissive policy and n
// cluster files, in one commit, which it returns.
func benchRepo(b *testing.B, n int) (*gitserver.Repo, string) {
	b.Helper()
	repo := gitserver.NewRepo(b, b.TempDir(), "bench")
	files := map[string]string{"policies/bench.yaml": `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: bench
spec:
  tenant: bench
  maxClusters: 100000
`}
	for i := range n {
		files[clusterFile(benchClusterName(i))] = clusterYAML(benchClusterName(i), "bench", "1")
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
	return repo, repo.Git(b, "rev-parse", "HEAD")
}

// measureOneClusterCommit changes one cluster in Git and reports how long
// until its object changed on the host and until the Fleet is Ready.
func (h *host) measureOneClusterCommit(b *testing.B, repo *gitserver.Repo, fleet client.ObjectKey, n int) {
	ctx := context.Background()
	changed := benchClusterName(n / 2)
	quotaCPU := func() string {
		q, err := h.kube.CoreV1().ResourceQuotas("vc-"+changed).Get(ctx, changed, metav1.GetOptions{})
		if err != nil {
			b.Fatalf("the ResourceQuota of %s: %v", changed, err)
		}
		hard := q.Spec.Hard["requests.cpu"]
		return hard.String()
	}
	cpuBefore := quotaCPU()
	phase := h.startPhase()
	start := time.Now()
	sha := repo.CommitFiles(b, changed+" gets 2 CPUs", map[string]string{clusterFile(changed): clusterYAML(changed, "bench", "2")})
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
	h.waitFleetApplied(fleet, sha, 5*time.Minute)
	ready := time.Since(start)
	b.ReportMetric(applied.Seconds(), "commit-to-applied-s")
	b.ReportMetric(ready.Seconds(), "fleet-ready-s")
	b.Logf("one-cluster commit: its objects applied after %s, Fleet Ready after %s; API requests by verb: %v", applied.Round(time.Millisecond), ready.Round(time.Millisecond), phase.requests())
}

// phaseRequests counts the API server's requests from its start.
type phaseRequests struct {
	h      *host
	before map[string]float64
}

func (h *host) startPhase() phaseRequests {
	before, err := apiRequests(context.Background(), h.plane)
	if err != nil {
		h.t.Fatal(err)
	}
	return phaseRequests{h: h, before: before}
}

// requests are the requests by verb (and dry run) since the phase started.
func (p phaseRequests) requests() map[string]float64 {
	after, err := apiRequests(context.Background(), p.h.plane)
	if err != nil {
		p.h.t.Fatal(err)
	}
	out := map[string]float64{}
	for k, v := range after {
		if d := v - p.before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// measureSSALimit server-side applies objects objects, grouped as n
// clusters (a namespace, then its ConfigMaps of about 2 KB), 8 clusters at
// a time, straight to the API server without a client-side rate limit, and
// returns how long that took: what a cold start of this many objects
// cannot beat on this machine.
func (h *host) measureSSALimit(b *testing.B, objects, n int) time.Duration {
	cfg := rest.CopyConfig(h.plane.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	perCluster := max(objects/n-1, 1)
	payload := strings.Repeat("x", 2000)
	phase := h.startPhase()
	start := time.Now()
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- applyLimitCluster(c, fmt.Sprintf("ssa-limit-%04d", i), perCluster, payload)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	b.Logf("the API server's own limit: %d objects (%d namespaces, %d ConfigMaps each) server-side applied in %s (%.0f objects/s); API requests by verb: %v",
		n*(perCluster+1), n, perCluster, took.Round(time.Millisecond), float64(n*(perCluster+1))/took.Seconds(), phase.requests())
	return took
}

// applyLimitCluster applies one namespace and its ConfigMaps.
func applyLimitCluster(c client.Client, ns string, configMaps int, payload string) error {
	ctx := context.Background()
	apply := func(obj map[string]any) error {
		u := &unstructured.Unstructured{Object: obj}
		return c.Patch(ctx, u, client.Apply, client.FieldOwner("ssa-limit"), client.ForceOwnership)
	}
	if err := apply(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}); err != nil {
		return fmt.Errorf("applying namespace %s: %w", ns, err)
	}
	for j := range configMaps {
		cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprintf("cm-%02d", j), "namespace": ns, "labels": map[string]any{"app.kubernetes.io/managed-by": "ssa-limit"}},
			"data":     map[string]any{"payload": payload}}
		if err := apply(cm); err != nil {
			return fmt.Errorf("applying ConfigMap %s/cm-%02d: %w", ns, j, err)
		}
	}
	return nil
}

// noopResult is what measureNoop saw of one no-op reconcile.
type noopResult struct {
	took       time.Duration
	writes     float64            // write requests, the API server's own lease renewals left out
	byResource map[string]float64 // those writes by verb and resource
	requests   map[string]float64 // every request by verb (and dry run)
	phases     phaseTimes         // the reconcile's seconds by phase
}

// measureNoop waits for the next reconcile of the Fleet controller (started
// by the interval) and returns its duration, the requests the API server
// counted while it ran, and its phases' durations.
func measureNoop(b *testing.B, plane *localkube.Plane, rec *reconcilerProcess, interval time.Duration) noopResult {
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
	phases0 := phaseSeconds(b, rec)
	before, err := plane.WriteCounts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	requestsBefore, err := apiRequests(ctx, plane)
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
	return noopResult{
		took:       time.Duration((sum1 - sum0) / (count1 - count0) * float64(time.Second)),
		writes:     total,
		byResource: byResource,
		requests:   requests,
		phases:     phaseSeconds(b, rec).since(phases0),
	}
}

// phaseTimes is seconds spent per phase of the Fleet reconciles
// (controller.PhaseDurationMetric), summed over the reconciles counted.
type phaseTimes map[string]float64

// phaseSeconds reads the reconciler's phase durations so far.
func phaseSeconds(b *testing.B, rec *reconcilerProcess) phaseTimes {
	b.Helper()
	body, err := scrape(rec.Metrics)
	if err != nil {
		b.Fatal(err)
	}
	sums, err := localkube.SumCounter(body, controller.PhaseDurationMetric+"_sum", func(l map[string]string) (string, bool) { return l["phase"], true })
	if err != nil {
		b.Fatal(err)
	}
	return sums
}

// since is the time spent per phase after earlier was read.
func (p phaseTimes) since(earlier phaseTimes) phaseTimes {
	out := phaseTimes{}
	for k, v := range p {
		if d := v - earlier[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// String lists the phases from the slowest, to the millisecond.
func (p phaseTimes) String() string {
	keys := slices.SortedFunc(maps.Keys(p), func(a, b string) int { return cmp.Compare(p[b], p[a]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.3f", k, p[k])
	}
	return strings.Join(parts, ", ")
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

// softLimit says which Go soft memory limit the reconciler runs with: its
// own default, 90 % of its cgroup's memory limit (none for a process here),
// unless GOMEMLIMIT is set (it inherits the benchmark's environment;
// GOMEMLIMIT=off runs it without one).
func softLimit() string {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		return "GOMEMLIMIT=" + v
	}
	return "warren-reconciler's default (GOMEMLIMIT unset: 90 % of a cgroup memory limit, if any)"
}

// heapAtPeaks saves the reconciler's heap profile (from its pprof address)
// each time its resident set grows 4 MiB past the last saved one, as
// dir/heap-peak.pprof, with the Go runtime's memory statistics of that
// moment from its metrics (heap in use, next GC, idle and released pages)
// in dir/heap-peak.txt, so the profile last saved is the one nearest the
// peak; read it with go tool pprof -sample_index=inuse_space (live at the
// last GC) or alloc_space (all allocated so far). stop ends the sampling
// and saves the heap once more, as dir/heap-end.pprof and .txt.
func heapAtPeaks(b *testing.B, rec *reconcilerProcess, addr, dir string) (stop func()) {
	pid := rec.PID()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	save := func(name string) {
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap")
		if err != nil {
			return // not serving yet
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return
		}
		_ = os.WriteFile(filepath.Join(dir, name+".pprof"), body, 0o644)
		if metrics, err := scrape(rec.Metrics); err == nil {
			var runtime []string
			for _, line := range strings.Split(metrics, "\n") {
				if strings.HasPrefix(line, "go_memstats_") || strings.HasPrefix(line, "go_gc_") {
					runtime = append(runtime, line)
				}
			}
			_ = os.WriteFile(filepath.Join(dir, name+".txt"), []byte(strings.Join(runtime, "\n")+"\n"), 0o644)
		}
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var saved int64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if rss, err := currentRSS(pid); err == nil && rss > saved+4<<20 {
				save("heap-peak")
				saved = rss
				anon, _ := procStatus(pid, "RssAnon:")
				file, _ := procStatus(pid, "RssFile:")
				b.Logf("heap profile saved at RSS %d MiB (anonymous %d MiB, the binary and other files %d MiB)", rss>>20, anon>>20, file>>20)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		save("heap-end")
	}
}

// currentRSS is a process's resident set size in bytes (VmRSS).
func currentRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// peakRSS is a process's peak resident set size in bytes (VmHWM).
func peakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// procStatus reads one size field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", field, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
