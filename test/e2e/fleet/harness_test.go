package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/localkube"
)

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	return s
}

// host is a test's view of the host plane.
type host struct {
	t     testing.TB
	plane *localkube.Plane
	c     client.Client
	kube  kubernetes.Interface
	meta  metadata.Interface
	disc  discovery.DiscoveryInterface
}

func newHost(t testing.TB, p *localkube.Plane) *host {
	t.Helper()
	c, err := client.New(p.Config, client.Options{Scheme: scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The sweep lists deprecated kinds too; their warnings say nothing here.
	quiet := rest.CopyConfig(p.Config)
	quiet.WarningHandler = rest.NoWarnings{}
	return &host{
		t: t, plane: p, c: c,
		kube: kubernetes.NewForConfigOrDie(p.Config),
		meta: metadata.NewForConfigOrDie(quiet),
		disc: discovery.NewDiscoveryClientForConfigOrDie(quiet),
	}
}

// ---- the reconciler as a process

// reconcilerProcess is warren-reconciler running as its own OS process.
type reconcilerProcess struct {
	t       testing.TB
	args    []string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	starts  int
	Metrics string // host:port of its Prometheus metrics, empty when off
}

type reconcilerOptions struct {
	metrics    bool
	concurrent int
	// extra flags, e.g. --kube-api-qps
	flags []string
}

// startReconciler runs warren-reconciler against the plane until the test
// ends. Its log goes to a file that is printed when the test fails.
func startReconciler(t testing.TB, p *localkube.Plane, o reconcilerOptions) *reconcilerProcess {
	t.Helper()
	dir := t.TempDir()
	metricsAddr := "0"
	r := &reconcilerProcess{t: t, logPath: filepath.Join(dir, "reconciler.log")}
	if o.metrics {
		metricsAddr = testkit.FreeAddr(t)
		r.Metrics = metricsAddr
	}
	if o.concurrent == 0 {
		o.concurrent = 4
	}
	r.args = []string{
		"--kubeconfig=" + p.KubeconfigPath,
		"--cache-dir=" + filepath.Join(dir, "cache"),
		"--metrics-addr=" + metricsAddr,
		"--health-addr=0",
		"--concurrent=" + strconv.Itoa(o.concurrent),
		"--log-level=debug",
	}
	r.args = append(r.args, o.flags...)
	if !slices.ContainsFunc(o.flags, func(f string) bool { return strings.HasPrefix(f, "--watch-label-selector") }) {
		r.args = append(r.args, "--watch-label-selector="+shardSelector(storyShard(t)))
	}
	r.start()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("warren-reconciler log (last lines):\n%s", tail(r.logPath, 80))
		}
		// E2E_KEEP_LOGS=<dir> keeps every reconciler log, for a closer look.
		if keep := os.Getenv("E2E_KEEP_LOGS"); keep != "" {
			if data, err := os.ReadFile(r.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_")+".log"), data, 0o644)
			}
		}
	})
	return r
}

func (r *reconcilerProcess) start() {
	r.t.Helper()
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	r.starts++
	fmt.Fprintf(logFile, "---- start %d\n", r.starts)
	cmd := exec.Command(reconcilerBinary, r.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		r.t.Fatalf("starting warren-reconciler: %v", err)
	}
	r.cmd = cmd
	r.done = make(chan struct{})
	go func() {
		r.exitErr = cmd.Wait()
		logFile.Close()
		close(r.done)
	}()
}

// Kill ends the process with SIGKILL, as a node failure or an OOM kill
// would: no deferred status write, no cleanup.
func (r *reconcilerProcess) Kill() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		r.t.Fatalf("killing warren-reconciler: %v", err)
	}
	<-r.done
}

// Restart starts the process again with the same flags and cache.
func (r *reconcilerProcess) Restart() { r.start() }

// PID is the running process's id.
func (r *reconcilerProcess) PID() int { return r.cmd.Process.Pid }

// Exited reports whether the process ended by itself.
func (r *reconcilerProcess) Exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *reconcilerProcess) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- Fleets

// storyShard is the shard of the story t is part of. Stories run in
// parallel on the shared host, each with reconcilers of its own: each
// reconciler is a shard (Flux's --watch-label-selector) that reconciles
// only its own story's Fleets, as it would be alone on the host.
func storyShard(t testing.TB) string {
	story, _, _ := strings.Cut(t.Name(), "/")
	sum := sha256.Sum256([]byte(story))
	return "story-" + hex.EncodeToString(sum[:6])
}

// fleetSpec is what a story asks of its Fleet.
type fleetSpec struct {
	url            string
	secretRef      string // a Secret in the Fleet's namespace with credentials
	interval       time.Duration
	allowMassPrune bool
	labels         map[string]string // e.g. a shard's sharding.fluxcd.io/key
}

// createFleet creates the namespace and a Fleet named "fleet" in it. The
// Fleet is suspended when the test ends, so reconcilers of later stories
// leave its clusters alone.
func (h *host) createFleet(ns string, s fleetSpec) client.ObjectKey {
	h.t.Helper()
	ctx := context.Background()
	if err := h.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		h.t.Fatal(err)
	}
	if s.interval == 0 {
		s.interval = 30 * time.Second
	}
	labels := map[string]string{v1alpha1.ShardingKeyLabel: storyShard(h.t)}
	maps.Copy(labels, s.labels) // a story about shards names its own
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fleet", Labels: labels},
		Spec: v1alpha1.FleetSpec{
			URL:            s.url,
			Interval:       metav1.Duration{Duration: s.interval},
			Timeout:        &metav1.Duration{Duration: 2 * time.Minute},
			AllowMassPrune: s.allowMassPrune,
		},
	}
	if s.secretRef != "" {
		fleet.Spec.SecretRef = &meta.LocalObjectReference{Name: s.secretRef}
	}
	if err := h.c.Create(ctx, fleet); err != nil {
		h.t.Fatalf("creating Fleet: %v", err)
	}
	key := client.ObjectKeyFromObject(fleet)
	h.t.Cleanup(func() {
		var f v1alpha1.Fleet
		if err := h.c.Get(context.Background(), key, &f); err != nil {
			return
		}
		before := f.DeepCopy()
		f.Spec.Suspend = true
		_ = h.c.Patch(context.Background(), &f, client.MergeFrom(before))
	})
	return key
}

func (h *host) fleet(key client.ObjectKey) *v1alpha1.Fleet {
	h.t.Helper()
	var f v1alpha1.Fleet
	if err := h.c.Get(context.Background(), key, &f); err != nil {
		h.t.Fatalf("reading Fleet %s: %v", key, err)
	}
	return &f
}

// inventory is what the Fleet's inventory ConfigMaps list.
func (h *host) inventory(f *v1alpha1.Fleet) []v1alpha1.ResourceRef {
	h.t.Helper()
	inv, err := controller.StoredInventory(context.Background(), h.c, f)
	if err != nil {
		h.t.Fatalf("reading the inventory of Fleet %s/%s: %v", f.Namespace, f.Name, err)
	}
	return inv.Entries
}

// requestReconcile sets warren.dev/requested-at and waits until a reconcile
// that saw it has finished; it returns the Fleet as that reconcile left it.
func (h *host) requestReconcile(key client.ObjectKey, timeout time.Duration) *v1alpha1.Fleet {
	h.t.Helper()
	token := h.annotate(key)
	var f *v1alpha1.Fleet
	testkit.Eventually(h.t, timeout, "a reconcile of Fleet "+key.String()+" after requested-at "+token, func() (bool, string) {
		f = h.fleet(key)
		return f.Status.LastHandledRequestedAt == token, fleetState(f)
	})
	return f
}

// annotate sets a new warren.dev/requested-at on the Fleet and returns it.
func (h *host) annotate(key client.ObjectKey) string {
	h.t.Helper()
	token := time.Now().UTC().Format(time.RFC3339Nano)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.RequestedAtAnnotation, token)
	f := &v1alpha1.Fleet{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := h.c.Patch(context.Background(), f, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		h.t.Fatalf("annotating Fleet %s: %v", key, err)
	}
	return token
}

// waitFleetApplied waits until the Fleet has applied revision sha (any
// branch) and is Ready.
func (h *host) waitFleetApplied(key client.ObjectKey, sha string, timeout time.Duration) *v1alpha1.Fleet {
	h.t.Helper()
	var f *v1alpha1.Fleet
	testkit.Eventually(h.t, timeout, "Fleet "+key.String()+" Ready at "+sha, func() (bool, string) {
		f = h.fleet(key)
		ready := apimeta.FindStatusCondition(f.Status.Conditions, meta.ReadyCondition)
		return strings.HasSuffix(f.Status.LastAppliedRevision, "sha1:"+sha) && ready != nil && ready.Status == metav1.ConditionTrue &&
			ready.ObservedGeneration <= f.Status.ObservedGeneration, fleetState(f)
	})
	return f
}

func fleetState(f *v1alpha1.Fleet) string {
	var conds []string
	for _, c := range f.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("attempted %q applied %q handled %q; %s", f.Status.LastAttemptedRevision, f.Status.LastAppliedRevision,
		f.Status.LastHandledRequestedAt, strings.Join(conds, "; "))
}

// ---- VirtualClusters

func (h *host) virtualCluster(name string) (*v1alpha1.VirtualCluster, bool) {
	h.t.Helper()
	var vc v1alpha1.VirtualCluster
	err := h.c.Get(context.Background(), client.ObjectKey{Name: name}, &vc)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		h.t.Fatalf("reading VirtualCluster %s: %v", name, err)
	}
	return &vc, true
}

// waitClustersReady waits until every named VirtualCluster is Ready: its
// control plane StatefulSet runs (on a kwok node).
func (h *host) waitClustersReady(timeout time.Duration, names ...string) {
	h.t.Helper()
	testkit.Eventually(h.t, timeout, fmt.Sprintf("VirtualClusters %v Ready", names), func() (bool, string) {
		var notReady []string
		for _, n := range names {
			vc, ok := h.virtualCluster(n)
			if !ok {
				notReady = append(notReady, n+": missing")
				continue
			}
			c := apimeta.FindStatusCondition(vc.Status.Conditions, v1alpha1.ReadyCondition)
			if c == nil || c.Status != metav1.ConditionTrue {
				notReady = append(notReady, n+": "+clusterState(vc))
			}
		}
		return len(notReady) == 0, strings.Join(notReady, " | ")
	})
}

func clusterState(vc *v1alpha1.VirtualCluster) string {
	var conds []string
	for _, c := range vc.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(conds, "; ")
}

func condition(vc *v1alpha1.VirtualCluster, t string) metav1.Condition {
	if c := apimeta.FindStatusCondition(vc.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{Type: t, Status: metav1.ConditionUnknown, Reason: "Missing"}
}

// ---- sweeping the host

// hostObject is one object found on the host by a sweep.
type hostObject struct {
	Resource        schema.GroupVersionResource
	Namespace, Name string
	ResourceVersion string
	UID             types.UID
	Labels          map[string]string
	// Managers are the field managers that wrote it.
	Managers []string
}

func (o hostObject) String() string {
	r := o.Resource.Resource
	if o.Resource.Group != "" {
		r += "." + o.Resource.Group
	}
	if o.Namespace == "" {
		return r + "/" + o.Name
	}
	return r + "/" + o.Namespace + "/" + o.Name
}

// sweep lists, through discovery, every listable kind at every scope
// (namespaced kinds across all namespaces, and cluster-scoped kinds) and
// returns the objects matching selector, keyed by String().
func (h *host) sweep(selector string) map[string]hostObject {
	h.t.Helper()
	lists, err := h.disc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		h.t.Fatalf("discovery: %v", err)
	}
	out := map[string]hostObject{}
	kinds := 0
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !contains(r.Verbs, "list") {
				continue
			}
			kinds++
			gvr := gv.WithResource(r.Name)
			items, err := h.meta.Resource(gvr).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				h.t.Fatalf("sweep: listing %s: %v", gvr, err)
			}
			for _, it := range items.Items {
				o := hostObject{Resource: gvr, Namespace: it.Namespace, Name: it.Name, ResourceVersion: it.ResourceVersion, UID: it.UID, Labels: it.Labels}
				for _, mf := range it.ManagedFields {
					o.Managers = append(o.Managers, mf.Manager)
				}
				out[o.String()] = o
			}
		}
	}
	if kinds < 40 {
		h.t.Fatalf("sweep: discovery found only %d listable kinds; the sweep would prove nothing", kinds)
	}
	return out
}

// resourceVersions maps each object to its resourceVersion.
func resourceVersions(objs map[string]hostObject) map[string]string {
	out := make(map[string]string, len(objs))
	for k, o := range objs {
		out[k] = o.ResourceVersion
	}
	return out
}

// diffVersions lists the objects of before that are gone or changed in after.
func diffVersions(before, after map[string]string) []string {
	var diff []string
	for k, rv := range before {
		switch now, ok := after[k]; {
		case !ok:
			diff = append(diff, k+" gone")
		case now != rv:
			diff = append(diff, fmt.Sprintf("%s resourceVersion %s → %s", k, rv, now))
		}
	}
	sort.Strings(diff)
	return diff
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ---- the API server's own metrics

// apiRequests sums apiserver_request_total over every verb, by verb.
func apiRequests(ctx context.Context, plane *localkube.Plane) (map[string]float64, error) {
	return plane.RequestCounts(ctx, func(l map[string]string) (string, bool) {
		if l["verb"] == "WATCH" {
			return "", false
		}
		return l["verb"] + " " + l["dry_run"], true
	})
}

// hasReason reports whether the Ready condition has reason.
func hasReason(conds []metav1.Condition, reason string) bool {
	c := apimeta.FindStatusCondition(conds, meta.ReadyCondition)
	return c != nil && c.Reason == reason
}
