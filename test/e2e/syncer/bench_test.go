package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/warren-dev/warren/test/localkube"
)

const benchConcurrency = 32

// benchPods is 1,000 unless WARREN_BENCH_PODS says otherwise (200 compares
// with vcluster's published run).
var benchPods = func() int {
	if n, err := strconv.Atoi(os.Getenv("WARREN_BENCH_PODS")); err == nil && n > 0 {
		return n
	}
	return 1000
}()

// clientset is a fast client for the benchmark's own traffic, the same on
// both sides so the comparison is fair.
func clientset(b *testing.B, cfg *rest.Config) kubernetes.Interface {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// podTimes records, per pod name, when something was first seen.
type podTimes struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (p *podTimes) mark(name string) {
	now := time.Now()
	p.mu.Lock()
	if _, ok := p.at[name]; !ok {
		p.at[name] = now
	}
	p.mu.Unlock()
}

func (p *podTimes) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.at)
}

func (p *podTimes) get(name string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.at[name]
	return t, ok
}

// watchPods calls seen(pod) for every add and update in namespace ns.
func watchPods(ctx context.Context, cs kubernetes.Interface, ns string, seen func(*corev1.Pod)) {
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { seen(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { seen(o.(*corev1.Pod)) },
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
}

func benchPod(ns string, i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "load-" + strconv.Itoa(i), Namespace: ns, Labels: map[string]string{"app": "load"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

// createPods creates n pods with fixed concurrency and records when each
// create returned.
func createPods(b *testing.B, ctx context.Context, cs kubernetes.Interface, ns string, created *podTimes) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := benchPod(ns, i)
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					b.Errorf("creating pod %s: %v", p.Name, err)
					continue
				}
				created.mark(p.Name)
			}
		}()
	}
	for i := range benchPods {
		work <- i
	}
	close(work)
	wg.Wait()
}

func waitCount(b *testing.B, what string, t *podTimes, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for t.len() < benchPods {
		if time.Now().After(deadline) {
			b.Fatalf("%s: only %d of %d within %s", what, t.len(), benchPods, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// cpuSeconds is the CPU time (user+system) the processes used so far.
func cpuSeconds(pids ...int) float64 {
	total := 0.0
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			total += (u + s) / 100 // USER_HZ
		}
	}
	return total
}

// cpuByProcess is cpuSeconds per process, by command name.
func cpuByProcess(pids ...int) map[string]float64 {
	out := map[string]float64{}
	for _, pid := range pids {
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil {
			continue
		}
		out[strings.TrimSpace(string(comm))] += cpuSeconds(pid)
	}
	return out
}

// procKB reads a field (VmRSS, VmHWM) of /proc/<pid>/status in KiB.
func procKB(pid int, field string) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}

// BenchmarkThousandPods creates 1,000 pods directly on the host, then the
// same 1,000 pods in the virtual cluster, each until all are Running where
// they were created; it reports the ratio (the syncer's overhead), the
// syncer's peak RSS, the delay from virtual create to host create, and from
// virtual create to Running in the virtual cluster.
func BenchmarkThousandPods(b *testing.B) {
	if testing.Short() || w == nil {
		b.Skip("starts two control planes and the syncer")
	}
	host, virtual := clientset(b, w.host.Config), clientset(b, w.virtual.Config)
	pid := w.syncer.cmd.Process.Pid
	for iter := 0; iter < b.N; iter++ {
		ctx, cancel := context.WithCancel(context.Background())
		// First, while the planes are idle (and the fake nodes have room).
		oneAtATime(b, ctx, host, virtual, iter)
		idleRSS := procKB(pid, "VmRSS")

		// Directly on the host.
		direct := "direct-" + strconv.Itoa(iter)
		if _, err := host.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: direct}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitDefaultSA(b, ctx, host, direct)
		directRunning := &podTimes{at: map[string]time.Time{}}
		watchPods(ctx, host, direct, func(p *corev1.Pod) {
			if p.Status.Phase == corev1.PodRunning {
				directRunning.mark(p.Name)
			}
		})
		cpu0 := cpuSeconds(w.host.PIDs()...)
		directProc0 := cpuByProcess(w.host.PIDs()...)
		directReq0 := requests(b, w.host)
		start := time.Now()
		directCreated := &podTimes{at: map[string]time.Time{}}
		createPods(b, ctx, host, direct, directCreated)
		waitCount(b, "direct pods Running", directRunning, 5*time.Minute)
		directTook := time.Since(start)
		directCPU := cpuSeconds(w.host.PIDs()...) - cpu0
		directProc := diff(cpuByProcess(w.host.PIDs()...), directProc0)
		directReq := diff(requests(b, w.host), directReq0)

		// Through the virtual cluster.
		ns := "load-" + strconv.Itoa(iter)
		if _, err := virtual.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitDefaultSA(b, ctx, virtual, ns)
		created := &podTimes{at: map[string]time.Time{}}
		onHost := &podTimes{at: map[string]time.Time{}}
		running := &podTimes{at: map[string]time.Time{}}
		hostRunning := &podTimes{at: map[string]time.Time{}}
		watchPods(ctx, host, hostNamespace, func(p *corev1.Pod) {
			if p.Labels[v1alpha1.SyncerNamespaceLabel] == ns {
				onHost.mark(p.Annotations[v1alpha1.OriginNameAnnotation])
				if p.Status.Phase == corev1.PodRunning {
					hostRunning.mark(p.Annotations[v1alpha1.OriginNameAnnotation])
				}
			}
		})
		watchPods(ctx, virtual, ns, func(p *corev1.Pod) {
			if p.Status.Phase == corev1.PodRunning {
				running.mark(p.Name)
			}
		})
		peak := 0.0
		stopSampling := make(chan struct{})
		go func() {
			for {
				if rss := procKB(pid, "VmRSS"); rss > peak {
					peak = rss
				}
				select {
				case <-stopSampling:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		hostCPU0, virtualCPU0, syncerCPU0 := cpuSeconds(w.host.PIDs()...), cpuSeconds(w.virtual.PIDs()...), cpuSeconds(pid)
		hostReq0, virtualReq0 := requests(b, w.host), requests(b, w.virtual)
		hostProc0, virtualProc0 := cpuByProcess(w.host.PIDs()...), cpuByProcess(w.virtual.PIDs()...)
		profiles := profile(ctx, os.Getenv("WARREN_BENCH_PROFILE"))
		start = time.Now()
		createPods(b, ctx, virtual, ns, created)
		waitCount(b, "virtual pods Running", running, 5*time.Minute)
		virtualTook := time.Since(start)
		hostCPU, virtualCPU, syncerCPU := cpuSeconds(w.host.PIDs()...)-hostCPU0, cpuSeconds(w.virtual.PIDs()...)-virtualCPU0, cpuSeconds(pid)-syncerCPU0
		close(stopSampling)
		profiles.Wait()
		hostProc, virtualProc := diff(cpuByProcess(w.host.PIDs()...), hostProc0), diff(cpuByProcess(w.virtual.PIDs()...), virtualProc0)
		hostReq, virtualReq := diff(requests(b, w.host), hostReq0), diff(requests(b, w.virtual), virtualReq0)

		var toHost, toRunning, toHostRunning, directToRunning []time.Duration
		for i := range benchPods {
			name := "load-" + strconv.Itoa(i)
			c, _ := created.get(name)
			if h, ok := onHost.get(name); ok {
				toHost = append(toHost, h.Sub(c))
			}
			if r, ok := running.get(name); ok {
				toRunning = append(toRunning, r.Sub(c))
			}
			if r, ok := hostRunning.get(name); ok {
				toHostRunning = append(toHostRunning, r.Sub(c))
			}
			dc, _ := directCreated.get(name)
			if r, ok := directRunning.get(name); ok {
				directToRunning = append(directToRunning, r.Sub(dc))
			}
		}
		ratio := virtualTook.Seconds() / directTook.Seconds()
		b.ReportMetric(directTook.Seconds(), "direct-s")
		b.ReportMetric(virtualTook.Seconds(), "virtual-s")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(peak/1024, "peak-rss-MB")
		b.ReportMetric(float64(percentile(toHost, 0.5).Microseconds())/1000, "to-host-p50-ms")
		b.ReportMetric(float64(percentile(toHost, 0.99).Microseconds())/1000, "to-host-p99-ms")
		b.ReportMetric(float64(percentile(toRunning, 0.5).Microseconds())/1000, "to-running-p50-ms")
		b.ReportMetric(float64(percentile(toRunning, 0.99).Microseconds())/1000, "to-running-p99-ms")
		fmt.Fprintf(os.Stderr, "bench: %d pods: direct %.2fs, virtual %.2fs, ratio %.2f; syncer RSS idle %.0f MB, peak %.0f MB (VmHWM %.0f MB); "+
			"create->host p50 %s p99 %s; create->Running p50 %s p99 %s\n",
			benchPods, directTook.Seconds(), virtualTook.Seconds(), ratio, idleRSS/1024, peak/1024, procKB(pid, "VmHWM")/1024,
			percentile(toHost, 0.5), percentile(toHost, 0.99), percentile(toRunning, 0.5), percentile(toRunning, 0.99))
		fmt.Fprintf(os.Stderr, "bench: create->Running on the host p50 %s p99 %s; direct run: create->Running p50 %s p99 %s\n",
			percentile(toHostRunning, 0.5), percentile(toHostRunning, 0.99), percentile(directToRunning, 0.5), percentile(directToRunning, 0.99))
		b.ReportMetric(float64(percentile(directToRunning, 0.5).Microseconds())/1000, "direct-to-running-p50-ms")
		fmt.Fprintf(os.Stderr, "bench: CPU seconds: direct run: host plane %.1f; through the syncer: host plane %.1f, virtual plane %.1f, syncer %.1f\n",
			directCPU, hostCPU, virtualCPU, syncerCPU)
		fmt.Fprintf(os.Stderr, "bench: CPU seconds by process: direct run: host %s\nbench: through the syncer: host %s; virtual %s\n",
			directProc, hostProc, virtualProc)
		fmt.Fprintf(os.Stderr, "bench: write requests: direct run: host %s\nbench: through the syncer: host %s\nbench: through the syncer: virtual %s\n",
			directReq, hostReq, virtualReq)
		if path := os.Getenv("WARREN_BENCH_METRICS"); path != "" {
			saveMetrics(path)
		}
		cancel()
	}
}

// profile, when dir is set, saves 10-second CPU profiles of both API servers
// (and of the syncer, if WARREN_SYNCER_PPROF gave it a pprof address) taken
// from now on, as <dir>/{host,virtual}-apiserver.pprof and syncer.pprof.
func profile(ctx context.Context, dir string) *sync.WaitGroup {
	var wg sync.WaitGroup
	if dir == "" {
		return &wg
	}
	save := func(name string, get func() ([]byte, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := get()
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: profiling %s: %v\n", name, err)
				return
			}
			_ = os.WriteFile(filepath.Join(dir, name+".pprof"), body, 0o644)
		}()
	}
	for name, p := range map[string]*localkube.Plane{"host-apiserver": w.host, "virtual-apiserver": w.virtual} {
		cs, err := kubernetes.NewForConfig(p.Config)
		if err != nil {
			continue
		}
		save(name, func() ([]byte, error) {
			return cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "10").DoRaw(ctx)
		})
	}
	if addr := os.Getenv("WARREN_SYNCER_PPROF"); addr != "" {
		save("syncer", func() ([]byte, error) {
			resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=10")
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			return io.ReadAll(resp.Body)
		})
	}
	return &wg
}

// saveMetrics keeps the syncer's Prometheus metrics after a run, to see
// where the time went.
func saveMetrics(path string) {
	resp, err := http.Get("http://" + w.metricsAddr + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	_ = os.WriteFile(path, body, 0o644)
	if log, err := os.ReadFile(w.syncer.log); err == nil {
		_ = os.WriteFile(path+".log", log, 0o644)
	}
}

// serialPods is how many pods oneAtATime creates on each side.
const serialPods = 20

// oneAtATime measures the same delays on idle planes: pods created one after
// another, each once the previous one is Running, directly on the host and
// in the virtual cluster. This is what a single `kubectl run` waits for.
func oneAtATime(b *testing.B, ctx context.Context, host, virtual kubernetes.Interface, iter int) {
	ctx, cancel := context.WithCancel(ctx) // its watches end with it
	defer cancel()
	direct, ns := "serial-direct-"+strconv.Itoa(iter), "serial-"+strconv.Itoa(iter)
	if _, err := host.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: direct}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := virtual.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitDefaultSA(b, ctx, host, direct)
	waitDefaultSA(b, ctx, virtual, ns)
	directRunning, onHost, running := &podTimes{at: map[string]time.Time{}}, &podTimes{at: map[string]time.Time{}}, &podTimes{at: map[string]time.Time{}}
	watchPods(ctx, host, direct, func(p *corev1.Pod) {
		if p.Status.Phase == corev1.PodRunning {
			directRunning.mark(p.Name)
		}
	})
	watchPods(ctx, host, hostNamespace, func(p *corev1.Pod) {
		if p.Labels[v1alpha1.SyncerNamespaceLabel] == ns {
			onHost.mark(p.Annotations[v1alpha1.OriginNameAnnotation])
		}
	})
	watchPods(ctx, virtual, ns, func(p *corev1.Pod) {
		if p.Status.Phase == corev1.PodRunning {
			running.mark(p.Name)
		}
	})
	// run creates the pods one at a time and returns, per pod, the delays
	// from its create returning to each of the marks.
	run := func(cs kubernetes.Interface, ns string, until *podTimes, marks ...*podTimes) [][]time.Duration {
		out := make([][]time.Duration, len(marks))
		for i := range serialPods {
			p := benchPod(ns, i)
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				b.Fatalf("creating pod %s: %v", p.Name, err)
			}
			created := time.Now()
			deadline := created.Add(time.Minute)
			for {
				if _, ok := until.get(p.Name); ok {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("pod %s/%s not Running within a minute", ns, p.Name)
				}
				time.Sleep(time.Millisecond)
			}
			for j, m := range marks {
				at, _ := m.get(p.Name)
				out[j] = append(out[j], at.Sub(created))
			}
		}
		return out
	}
	d := run(host, direct, directRunning, directRunning)
	v := run(virtual, ns, running, onHost, running)
	fmt.Fprintf(os.Stderr, "bench: one pod at a time (%d pods): direct create->Running p50 %s p99 %s; through the syncer create->host p50 %s p99 %s, create->Running p50 %s p99 %s\n",
		serialPods, percentile(d[0], 0.5), percentile(d[0], 0.99), percentile(v[0], 0.5), percentile(v[0], 0.99), percentile(v[1], 0.5), percentile(v[1], 0.99))
	b.ReportMetric(float64(percentile(v[0], 0.5).Microseconds())/1000, "serial-to-host-p50-ms")
	b.ReportMetric(float64(percentile(v[1], 0.5).Microseconds())/1000, "serial-to-running-p50-ms")

	// Make room on the fake nodes again for the 1,000-pod runs.
	now := metav1.DeleteOptions{GracePeriodSeconds: new(int64)}
	if err := host.CoreV1().Pods(direct).DeleteCollection(ctx, now, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := virtual.CoreV1().Pods(ns).DeleteCollection(ctx, now, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d, err1 := host.CoreV1().Pods(direct).List(ctx, metav1.ListOptions{})
		h, err2 := host.CoreV1().Pods(hostNamespace).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.SyncerNamespaceLabel + "=" + ns})
		if err1 == nil && err2 == nil && len(d.Items)+len(h.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the one-at-a-time pods are still on the host a minute after their deletion")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requests counts the plane's write requests so far by verb and resource
// (subresource after a slash).
func requests(b *testing.B, p *localkube.Plane) map[string]float64 {
	counts, err := p.WriteCounts(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return counts
}

// writes is request counts, printed largest first.
type writes map[string]float64

func (c writes) String() string {
	keys := make([]string, 0, len(c))
	for k, v := range c {
		if v >= 1 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return c[keys[i]] > c[keys[j]] })
	var s strings.Builder
	for i, k := range keys {
		if i > 0 {
			s.WriteString(", ")
		}
		fmt.Fprintf(&s, "%s %.4g", k, c[k])
	}
	return s.String()
}

func diff(now, before map[string]float64) writes {
	out := writes{}
	for k, v := range now {
		out[k] = v - before[k]
	}
	return out
}

func waitDefaultSA(b *testing.B, ctx context.Context, cs kubernetes.Interface, ns string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no default service account in %s", ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
