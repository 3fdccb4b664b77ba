// Package demo is `warren demo`: warren's main job on an embedded default.
// It starts a local host control plane and the real sealed-secrets
// controller on it, pushes the bundled example fleet to a local Git
// repository, runs the reconciler against it and shows each cluster
// admitted, applied and Ready, then the commit in which warren pushed their
// kubeconfigs back to Git, sealed, and one of them unsealed on the host.
// Then it pushes the removal of one cluster and shows it pruned and its
// kubeconfig removed from Git by warren. It only ever touches the plane it
// started and the repositories it made, and never prints a credential.
package demo

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/config"
	"github.com/warren-dev/warren/internal/image"
	"github.com/warren-dev/warren/internal/localplane"
	"github.com/warren-dev/warren/internal/sealedsecrets"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
)

// Options tune the demo.
type Options struct {
	// Once exits after the prune, and the removal of the pruned cluster's
	// kubeconfig from Git, have been shown; otherwise the demo keeps
	// reconciling until ctx ends.
	Once bool
	// Nodes is the number of kwok fake nodes on the host plane.
	Nodes int
	// Timeout bounds each step.
	Timeout time.Duration
	// RealNodes, when above zero, runs the host plane on this many real
	// nodes (a kubelet with containerd; root only) instead of kwok's fake
	// ones: the k8s-distro clusters then really boot and the demo uses one
	// as its tenant would. SyncerBinary is then the static warren-syncer
	// put in the syncer image the nodes hold.
	RealNodes    int
	SyncerBinary string
}

// syncerImage is the syncer image the demo's reconciler renders.
const syncerImage = "ghcr.io/warren-dev/warren-syncer:demo"

const (
	fleetNamespace = "warren-system"
	fleetName      = "example"
)

// Run runs the demo, writing what happens to out.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.RealNodes > 0 && o.SyncerBinary == "" {
		return fmt.Errorf("real nodes need the syncer binary for their image (make demo builds it)")
	}
	d := &demo{out: out, start: time.Now(), opts: o}
	return d.run(ctx)
}

type demo struct {
	out   io.Writer
	start time.Time
	// committed is when the example fleet was pushed.
	committed time.Time
	opts      Options
	work      string // the demo's temporary directory
	c         client.Client
	plane     *localplane.Plane
	sealed    *sealedsecrets.Controller
	repos     *fleetRepos

	// reconcilerDone says why the reconciler stopped; seen, which
	// condition of which cluster has been told.
	reconcilerDone chan error
	seen           map[string]map[string]bool
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// lifecycle are the conditions every cluster goes through to Ready.
var lifecycle = []string{v1alpha1.AdmittedCondition, v1alpha1.AppliedCondition, v1alpha1.ReadyCondition}

// run is the demo's story: a host, a repository, the reconciler; the
// clusters come up and their kubeconfigs are published; one is removed
// from Git and pruned.
func (d *demo) run(ctx context.Context) (err error) {
	fmt.Fprintln(d.out, "warren demo: virtual clusters from a Git repository, on a local host control plane.")
	d.sayMode()

	if d.work, err = os.MkdirTemp("", "warren-demo-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.work)
	stopHost, err := d.startHost(ctx)
	defer stopHost()
	if err != nil {
		return err
	}
	if err := d.prepare(ctx); err != nil {
		return err
	}
	stopReconciler, err := d.startReconciler(ctx)
	defer stopReconciler()
	if err != nil {
		return err
	}
	clusters, err := d.showClustersComingUp(ctx)
	if err != nil {
		return err
	}
	if err := d.showPrune(ctx, clusters[len(clusters)-1]); err != nil { // the last one that runs
		return err
	}
	if d.opts.Once {
		d.say("done")
		return nil
	}
	return d.keepReconciling(ctx)
}

// sayMode says plainly what runs for real.
func (d *demo) sayMode() {
	if d.real() {
		fmt.Fprintln(d.out, "The host has a real node (kubelet, containerd, runc, kube-proxy): pods really run.")
		fmt.Fprintln(d.out, "No k3s images can be had on this machine, so only the example fleet's k8s-distro")
		fmt.Fprintln(d.out, "cluster (apps-dev) boots; its k3s clusters are admitted and applied, but never start.")
	} else {
		fmt.Fprintln(d.out, "Note: no real node here (real nodes need root). Pods on the host are simulated by kwok")
		fmt.Fprintln(d.out, "fake nodes: they are reported Running, but no container starts. Everything else is real.")
	}
	fmt.Fprintln(d.out)
}

func (d *demo) real() bool { return d.opts.RealNodes > 0 }

// runs says whether a cluster can start here: anything on kwok's fake
// nodes, only the k8s distro on real ones.
func (d *demo) runs(vc *v1alpha1.VirtualCluster) bool {
	return !d.real() || vc.Spec.Distro == v1alpha1.DistroK8s
}

// running are the clusters of vcs that can start here.
func (d *demo) running(vcs []v1alpha1.VirtualCluster) []v1alpha1.VirtualCluster {
	return slices.DeleteFunc(slices.Clone(vcs), func(vc v1alpha1.VirtualCluster) bool { return !d.runs(&vc) })
}

// startHost starts the host plane and the sealed-secrets controller on it;
// stop stops whatever started.
func (d *demo) startHost(ctx context.Context) (stop func(), err error) {
	stop = func() {}
	o := localplane.Options{ControllerManager: true, Scheduler: true, Nodes: d.opts.Nodes}
	if d.real() {
		o.Nodes, o.RealNodes = 0, d.opts.RealNodes
		o.NodeImages = []image.Spec{{Ref: syncerImage, Binary: d.opts.SyncerBinary, Path: "/ko-app/warren-syncer"}}
		d.say("starting a local host plane (etcd, kube-apiserver, controller-manager, scheduler) with %d real node(s)", o.RealNodes)
	} else {
		d.say("starting a local host plane (etcd, kube-apiserver, controller-manager, scheduler, kwok with %d nodes)", d.opts.Nodes)
	}
	if d.plane, err = localplane.Start(ctx, o); err != nil {
		return stop, fmt.Errorf("starting the host plane: %w", err)
	}
	stop = func() { _ = d.plane.Stop() }
	d.say("host plane up at %s", d.plane.Config.Host)

	d.say("starting the sealed-secrets controller (the real one, as a local process) on the host plane")
	if d.sealed, err = sealedsecrets.Start(ctx, d.plane, sealedsecrets.Options{}); err != nil {
		return stop, fmt.Errorf("starting the sealed-secrets controller: %w", err)
	}
	stop = func() { _ = d.sealed.Stop(); _ = d.plane.Stop() }
	d.say("sealed-secrets controller up: Service %s/%s serves its sealing certificate", d.sealed.Namespace, d.sealed.ServiceName)
	return stop, nil
}

// prepare commits the example fleet, connects to the host and installs
// warren's CRDs.
func (d *demo) prepare(ctx context.Context) (err error) {
	if d.repos, err = makeRepositories(ctx, filepath.Join(d.work, "fleet.git"), filepath.Join(d.work, "fleet")); err != nil {
		return err
	}
	d.committed = time.Now()
	d.say("example fleet committed in a working clone at %s", d.repos.CloneDir)
	d.say("and pushed to %s, a bare repository standing in for the Git server", d.repos.RemoteDir)

	scheme := controller.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	if d.c, err = client.New(d.plane.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := d.installCRDs(ctx); err != nil {
		return err
	}
	d.say("installed warren's CRDs (Fleet, VirtualCluster)")
	return nil
}

// startReconciler runs warren's reconciler in this process, logging to a
// file, and creates the Fleet; stop stops it.
func (d *demo) startReconciler(ctx context.Context) (stop func(), err error) {
	stop = func() {}
	logPath := filepath.Join(d.work, "reconciler.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return stop, err
	}
	log := zap.New(zap.WriteTo(logFile), zap.UseDevMode(false))
	ctrl.SetLogger(log)
	runCtx, cancel := context.WithCancel(ctx)
	stop = func() { cancel(); logFile.Close() }
	d.reconcilerDone, d.seen = make(chan error, 1), map[string]map[string]bool{}
	go func() {
		d.reconcilerDone <- controller.Run(runCtx, d.plane.Config, controller.Config{
			CacheDir:    filepath.Join(d.work, "cache"),
			SyncerImage: syncerImage,
			Version:     "demo",
			MetricsAddr: "0",
			HealthAddr:  "0",
			Concurrency: 4,
		}, log)
	}()
	d.say("reconciler running (its log: %s)", logPath)

	if err := d.createFleet(ctx, d.repos.RemoteDir); err != nil {
		return stop, err
	}
	d.say("Fleet %s/%s created for %s, publishing kubeconfigs sealed for %s/%s; watching:",
		fleetNamespace, fleetName, d.repos.RemoteDir, d.sealed.Namespace, d.sealed.ServiceName)
	return stop, nil
}

// showClustersComingUp waits until every cluster is Ready and its
// kubeconfig published, and shows both.
func (d *demo) showClustersComingUp(ctx context.Context) ([]v1alpha1.VirtualCluster, error) {
	clusters, err := d.watchUntil(ctx, lifecycle, func(vcs []v1alpha1.VirtualCluster) bool {
		return len(vcs) > 0 && allTrue(vcs, lifecycle[:2]) && allTrue(d.running(vcs), lifecycle)
	})
	if err != nil {
		return nil, err
	}
	if d.real() {
		d.say("all %d clusters admitted and applied; the k8s-distro ones are Ready (k3s ones cannot start here):", len(clusters))
	} else {
		d.say("all %d clusters admitted, applied and Ready:", len(clusters))
	}
	d.table(clusters)
	clusters = d.running(clusters)

	d.say("warren commits each Ready cluster's kubeconfig back to Git, sealed:")
	publishing := []string{v1alpha1.KubeconfigPublishedCondition}
	if clusters, err = d.watchUntil(ctx, publishing, func(vcs []v1alpha1.VirtualCluster) bool {
		return allTrue(d.running(vcs), publishing) && d.fleetPublished(ctx)
	}); err != nil {
		return nil, err
	}
	clusters = d.running(clusters)
	return clusters, d.showPublished(ctx, d.repos, clusters)
}

// showPrune removes victim from Git and shows it pruned, and its
// kubeconfig removed from Git.
func (d *demo) showPrune(ctx context.Context, victim v1alpha1.VirtualCluster) error {
	if victim.Status.Kubeconfig == nil {
		return fmt.Errorf("%s reports no published kubeconfig", victim.Name)
	}
	d.say("committing and pushing the removal of %s (%s)", victim.Name, victim.Status.SourcePath)
	if err := d.repos.RemoveAndPush(ctx, victim.Status.SourcePath, "Remove "+victim.Name); err != nil {
		return err
	}
	removal, err := d.repos.Head()
	if err != nil {
		return err
	}
	if err := d.requestReconcile(ctx); err != nil {
		return err
	}
	if _, err := d.watchUntil(ctx, lifecycle, func(vcs []v1alpha1.VirtualCluster) bool {
		return !slices.ContainsFunc(vcs, func(vc v1alpha1.VirtualCluster) bool { return vc.Name == victim.Name })
	}); err != nil {
		return err
	}
	if err := d.waitNamespaceGone(ctx, victim.Status.HostNamespace); err != nil {
		return err
	}
	d.say("%s pruned: its VirtualCluster and namespace %s are gone", victim.Name, victim.Status.HostNamespace)
	var rest v1alpha1.VirtualClusterList
	if err := d.c.List(ctx, &rest); err != nil {
		return err
	}
	d.table(rest.Items)
	return d.showKubeconfigRemoved(ctx, victim, removal)
}

// showKubeconfigRemoved waits until warren removed victim's kubeconfig
// from Git, and shows the commits and what is left.
func (d *demo) showKubeconfigRemoved(ctx context.Context, victim v1alpha1.VirtualCluster, removal plumbing.Hash) error {
	if err := d.waitFileRemoved(ctx, d.repos, victim.Status.Kubeconfig.Path); err != nil {
		return err
	}
	d.say("warren removed %s from Git:", victim.Status.Kubeconfig.Path)
	if err := d.showPushedCommits(ctx, d.repos, removal); err != nil {
		return err
	}
	files, err := readSealedFiles(d.repos.CloneDir)
	if err != nil {
		return err
	}
	d.say("%s/ now holds:", v1alpha1.DefaultKubeconfigPath)
	d.showSealedFiles(files)
	return nil
}

// keepReconciling says how to try warren and waits for Ctrl-C.
func (d *demo) keepReconciling(ctx context.Context) error {
	fmt.Fprintf(d.out, `
Still reconciling. Try it yourself:
  export KUBECONFIG=%s
  kubectl get virtualclusters
  cd %s
  # change clusters/ or policies/, then:
  git add -A && git commit -m "..." && git push   # warren applies it within 10s
  git pull && ls kubeconfigs/                      # once a new cluster is Ready: its sealed kubeconfig, committed by warren
Ctrl-C stops the demo and removes everything it made.
`, d.plane.KubeconfigPath, d.repos.CloneDir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.reconcilerDone:
		return fmt.Errorf("the reconciler stopped: %w", err)
	}
}

func allTrue(vcs []v1alpha1.VirtualCluster, types []string) bool {
	for i := range vcs {
		for _, t := range types {
			if !conditions.IsTrue(&vcs[i], t) {
				return false
			}
		}
	}
	return true
}

// watchUntil prints each cluster's conditions of the given types as they
// turn True, until done holds.
func (d *demo) watchUntil(ctx context.Context, types []string, done func([]v1alpha1.VirtualCluster) bool) ([]v1alpha1.VirtualCluster, error) {
	deadline := time.Now().Add(d.opts.Timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var list v1alpha1.VirtualClusterList
		if err := d.c.List(ctx, &list); err != nil {
			return nil, err
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
		for i := range list.Items {
			vc := &list.Items[i]
			if d.seen[vc.Name] == nil {
				d.seen[vc.Name] = map[string]bool{}
			}
			for _, t := range types {
				if c := conditions.Get(vc, t); c != nil && c.Status == metav1.ConditionTrue && !d.seen[vc.Name][t] {
					d.seen[vc.Name][t] = true
					d.say("  %-18s %-8s %s", vc.Name, t, c.Message)
				}
			}
		}
		if done(list.Items) {
			return list.Items, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not done within %s; %s", d.opts.Timeout, d.fleetState(ctx))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-d.reconcilerDone:
			return nil, fmt.Errorf("the reconciler stopped: %v", err)
		case <-tick.C:
		}
	}
}

func (d *demo) fleetState(ctx context.Context) string {
	var f v1alpha1.Fleet
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: fleetNamespace, Name: fleetName}, &f); err != nil {
		return err.Error()
	}
	c := conditions.Get(&f, "Ready")
	if c == nil {
		return "the Fleet has no Ready condition yet"
	}
	state := fmt.Sprintf("Fleet Ready=%s %s: %s", c.Status, c.Reason, c.Message)
	if c := conditions.Get(&f, v1alpha1.KubeconfigsPublishedCondition); c != nil {
		state += fmt.Sprintf("; %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
	}
	return state
}

// fleetPublished says whether the Fleet's publisher reports every
// kubeconfig current in Git.
func (d *demo) fleetPublished(ctx context.Context) bool {
	var f v1alpha1.Fleet
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: fleetNamespace, Name: fleetName}, &f); err != nil {
		return false
	}
	return conditions.IsTrue(&f, v1alpha1.KubeconfigsPublishedCondition) && f.Status.Kubeconfigs != nil && f.Status.Kubeconfigs.LastCommit != ""
}

// table prints clusters the way `kubectl get virtualclusters` does.
func (d *demo) table(vcs []v1alpha1.VirtualCluster) {
	w := tabwriter.NewWriter(d.out, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tTENANT\tDISTRO\tVERSION\tREADY\tAGE")
	for i := range vcs {
		vc := &vcs[i]
		ready := "Unknown"
		if c := conditions.Get(vc, v1alpha1.ReadyCondition); c != nil {
			ready = string(c.Status)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", vc.Name, vc.Spec.Tenant, vc.Spec.Distro, vc.Spec.Version, ready,
			duration.HumanDuration(time.Since(vc.CreationTimestamp.Time)))
	}
	w.Flush()
}

func (d *demo) installCRDs(ctx context.Context) error {
	entries, err := fs.Glob(config.CRDs, "crd/bases/*.yaml")
	if err != nil {
		return err
	}
	for _, path := range entries {
		data, err := fs.ReadFile(config.CRDs, path)
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := d.c.Patch(ctx, obj, client.Apply, client.FieldOwner("warren-demo"), client.ForceOwnership); err != nil {
			return fmt.Errorf("installing %s: %w", path, err)
		}
		if err := waitCRDEstablished(ctx, d.c, obj.GetName()); err != nil {
			return err
		}
	}
	return nil
}

func waitCRDEstablished(ctx context.Context, c client.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err == nil {
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *demo) createFleet(ctx context.Context, url string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetNamespace}}
	if err := d.c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetNamespace, Name: fleetName},
		Spec: v1alpha1.FleetSpec{
			URL:      url,
			Ref:      &v1alpha1.GitRef{Branch: branch},
			Interval: metav1.Duration{Duration: 10 * time.Second},
			Kubeconfigs: &v1alpha1.KubeconfigPublishing{
				Sealing: v1alpha1.SealingSource{Controller: &v1alpha1.SealingController{
					Namespace: d.sealed.Namespace,
					Service:   d.sealed.ServiceName,
				}},
			},
		},
	}
	return d.c.Create(ctx, fleet)
}

// requestReconcile asks for a reconcile now rather than at the next interval.
func (d *demo) requestReconcile(ctx context.Context) error {
	var f v1alpha1.Fleet
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: fleetNamespace, Name: fleetName}, &f); err != nil {
		return err
	}
	before := f.DeepCopy()
	if f.Annotations == nil {
		f.Annotations = map[string]string{}
	}
	f.Annotations[v1alpha1.RequestedAtAnnotation] = time.Now().Format(time.RFC3339Nano)
	return d.c.Patch(ctx, &f, client.MergeFrom(before))
}

func (d *demo) waitNamespaceGone(ctx context.Context, name string) error {
	return d.poll(ctx, 250*time.Millisecond, func() (bool, error) {
		return apierrors.IsNotFound(d.c.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})), nil
	}, func() error {
		return fmt.Errorf("namespace %s still exists after %s", name, d.opts.Timeout)
	})
}

// poll calls check every interval until it reports done or fails; once
// the demo's step timeout has passed it returns late's error instead.
func (d *demo) poll(ctx context.Context, interval time.Duration, check func() (bool, error), late func() error) error {
	deadline := time.Now().Add(d.opts.Timeout)
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return late()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
