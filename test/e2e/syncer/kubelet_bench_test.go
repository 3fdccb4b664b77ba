package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
)

// benchLogMB is the size of the log the benchmark reads (50 MB unless
// WARREN_BENCH_LOG_MB says otherwise); benchExecs how many execs it times
// on each side.
var (
	benchLogMB = envInt("WARREN_BENCH_LOG_MB", 50)
	benchExecs = envInt("WARREN_BENCH_EXECS", 200)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkKubeletRelay measures what the syncer's kubelet API costs a
// tenant: the throughput of reading a 50 MB log, and the round trip of an
// exec (a command that does nothing, started and finished), each through the
// virtual cluster (virtual API server, the syncer's kubelet API, the host
// API server, kwok) and straight on the host (host API server, kwok) in the
// same run, alternating so that the machine's load falls on both alike.
// Both sides use the same client as kubectl (WebSocket, SPDY as fallback)
// with the admin's credentials.
func BenchmarkKubeletRelay(b *testing.B) {
	if testing.Short() || w == nil {
		b.Skip("starts two control planes and the syncer")
	}
	ctx := context.Background()
	virtual, host := clientset(b, w.virtual.Config), clientset(b, w.host.Config)
	ns := unique("relay-bench")
	if _, err := virtual.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	waitDefaultSA(b, ctx, virtual, ns)
	hostPod := runningPod(b, ctx, ns, "web")
	logPath := filepath.Join(b.TempDir(), "app.log")
	printed := writeBenchLog(b, logPath, benchLogMB<<20)
	kwokObject(b, ctx, "Logs", hostPod, map[string]any{"logs": []any{
		map[string]any{"containers": []any{"app"}, "logsFile": logPath},
	}})
	kwokObject(b, ctx, "Exec", hostPod, map[string]any{"execs": []any{
		map[string]any{"containers": []any{"app"}, "local": map[string]any{"workDir": b.TempDir()}},
	}})
	sides := []struct {
		name    string
		cfg     *rest.Config
		cs      kubernetes.Interface
		ns, pod string
	}{
		{"virtual", w.virtual.Config, virtual, ns, "web"},
		{"direct", w.host.Config, host, hostNamespace, hostPod},
	}
	for range b.N {
		mbps := map[string][]float64{}
		for round := range 3 {
			for _, s := range sides {
				n, took, err := readLog(ctx, s.cs, s.ns, s.pod)
				if err != nil || n != printed {
					b.Fatalf("%s log, round %d: %d of %d bytes: %v", s.name, round, n, printed, err)
				}
				mbps[s.name] = append(mbps[s.name], float64(n)/1e6/took.Seconds())
			}
		}
		execs := map[string][]time.Duration{}
		for i := range benchExecs {
			for _, s := range sides {
				took, err := execOnce(ctx, s.cfg, s.cs, s.ns, s.pod)
				if err != nil {
					b.Fatalf("%s exec %d: %v", s.name, i, err)
				}
				execs[s.name] = append(execs[s.name], took)
			}
		}
		v, d := median(mbps["virtual"]), median(mbps["direct"])
		b.ReportMetric(float64(printed)/1e6, "log-MB")
		b.ReportMetric(v, "virtual-log-MB/s")
		b.ReportMetric(d, "direct-log-MB/s")
		b.ReportMetric(v/d, "log-ratio")
		for _, s := range sides {
			b.ReportMetric(ms(percentile(execs[s.name], 0.5)), s.name+"-exec-p50-ms")
			b.ReportMetric(ms(percentile(execs[s.name], 0.99)), s.name+"-exec-p99-ms")
		}
		b.ReportMetric(ms(percentile(execs["virtual"], 0.5))-ms(percentile(execs["direct"], 0.5)), "exec-p50-extra-ms")
	}
}

// median of three or more throughputs (the middle one of the sorted list).
func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeBenchLog writes a CRI log of about size bytes and returns the bytes
// kubectl logs prints for it (the lines without their CRI prefix).
func writeBenchLog(b *testing.B, path string, size int) int64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := bufio.NewWriterSize(f, 1<<20)
	prefix := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F "
	var printed int64
	for i, written := 0, 0; written < size; i++ {
		line := fmt.Sprintf("line %08d %s\n", i, strings.Repeat("x", 80))
		n, _ := buf.WriteString(prefix + line)
		written += n
		printed += int64(len(line))
	}
	if err := buf.Flush(); err != nil {
		b.Fatal(err)
	}
	return printed
}

// readLog reads a pod's whole log and returns how many bytes came and how
// long it took.
func readLog(ctx context.Context, cs kubernetes.Interface, ns, pod string) (int64, time.Duration, error) {
	start := time.Now()
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: "app"}).Stream(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	return n, time.Since(start), err
}

// execOnce runs "true" in the pod's container as kubectl exec does and
// returns how long it took, start to exit status.
func execOnce(ctx context.Context, cfg *rest.Config, cs kubernetes.Interface, ns, pod string) (time.Duration, error) {
	start := time.Now()
	u := cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "app", Command: []string{"true"}, Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	spdy, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return 0, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return 0, err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return 0, err
	}
	var out, errOut strings.Builder
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
		return 0, errors.Join(err, errors.New(errOut.String()))
	}
	return time.Since(start), nil
}
