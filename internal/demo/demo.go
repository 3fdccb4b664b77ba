// Package demo is `warren demo`: warren's main job on an embedded default.
// It starts a local host control plane, turns the bundled example fleet into
// a local Git repository, runs the reconciler against it and shows each
// cluster admitted, applied and Ready, then commits the removal of one
// cluster and shows it pruned. It only ever touches the plane it started and
// the repository it made.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
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
	"github.com/warren-dev/warren/examples"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/controller"
	"github.com/warren-dev/warren/test/localkube"
)

// Options tune the demo.
type Options struct {
	// Once exits after the prune has been shown; otherwise the demo keeps
	// reconciling until ctx ends.
	Once bool
	// Nodes is the number of kwok fake nodes on the host plane.
	Nodes int
	// Timeout bounds each step.
	Timeout time.Duration
}

const (
	fleetNamespace = "warren-system"
	fleetName      = "example"
)

// Run runs the demo, writing what happens to out.
func Run(ctx context.Context, out io.Writer, o Options) error {
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	d := &demo{out: out, start: time.Now(), opts: o}
	return d.run(ctx)
}

type demo struct {
	out   io.Writer
	start time.Time
	opts  Options
	c     client.Client
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%6.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	fmt.Fprintln(d.out, "warren demo: virtual clusters from a Git repository, on a local host control plane.")
	fmt.Fprintln(d.out, "Note: there is no container runtime here. Pods on the host are simulated by kwok fake")
	fmt.Fprintln(d.out, "nodes: they are reported Running, but no container starts. Everything else is real.")
	fmt.Fprintln(d.out)

	work, err := os.MkdirTemp("", "warren-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	d.say("starting a local host plane (etcd, kube-apiserver, controller-manager, scheduler, kwok with %d nodes)", d.opts.Nodes)
	plane, err := localkube.Start(ctx, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: d.opts.Nodes})
	if err != nil {
		return fmt.Errorf("starting the host plane: %w", err)
	}
	defer plane.Stop()
	d.say("host plane up at %s", plane.Config.Host)

	repoDir := filepath.Join(work, "fleet")
	repo, err := makeRepository(repoDir)
	if err != nil {
		return err
	}
	d.say("example fleet committed to a Git repository at %s", repoDir)

	scheme := controller.Scheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return err
	}
	if d.c, err = client.New(plane.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if err := d.installCRDs(ctx); err != nil {
		return err
	}
	d.say("installed warren's CRDs (Fleet, VirtualCluster)")

	logPath := filepath.Join(work, "reconciler.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := zap.New(zap.WriteTo(logFile), zap.UseDevMode(false))
	ctrl.SetLogger(log)
	runCtx, stopReconciler := context.WithCancel(ctx)
	defer stopReconciler()
	reconcilerDone := make(chan error, 1)
	go func() {
		reconcilerDone <- controller.Run(runCtx, plane.Config, controller.Config{
			CacheDir:    filepath.Join(work, "cache"),
			SyncerImage: "ghcr.io/warren-dev/warren-syncer:demo",
			Version:     "demo",
			MetricsAddr: "0",
			HealthAddr:  "0",
			Concurrency: 4,
		}, log)
	}()
	d.say("reconciler running (its log: %s)", logPath)

	if err := d.createFleet(ctx, repoDir); err != nil {
		return err
	}
	d.say("Fleet %s/%s created for %s; watching:", fleetNamespace, fleetName, repoDir)

	seen := map[string]map[string]bool{}
	clusters, err := d.watchUntil(ctx, reconcilerDone, seen, func(vcs []v1alpha1.VirtualCluster) bool {
		if len(vcs) == 0 {
			return false
		}
		for i := range vcs {
			for _, t := range []string{v1alpha1.AdmittedCondition, v1alpha1.AppliedCondition, v1alpha1.ReadyCondition} {
				if !conditions.IsTrue(&vcs[i], t) {
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	d.say("all %d clusters admitted, applied and Ready:", len(clusters))
	d.table(clusters)

	victim := clusters[len(clusters)-1]
	d.say("committing the removal of %s (%s)", victim.Name, victim.Status.SourcePath)
	if err := removeAndCommit(repo, repoDir, victim.Status.SourcePath, "Remove "+victim.Name); err != nil {
		return err
	}
	if err := d.requestReconcile(ctx); err != nil {
		return err
	}
	if _, err := d.watchUntil(ctx, reconcilerDone, seen, func(vcs []v1alpha1.VirtualCluster) bool {
		for _, vc := range vcs {
			if vc.Name == victim.Name {
				return false
			}
		}
		return true
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

	if d.opts.Once {
		d.say("done")
		return nil
	}
	fmt.Fprintf(d.out, "\nStill reconciling. Try it yourself:\n  export KUBECONFIG=%s\n  kubectl get virtualclusters\n  cd %s   # commit a change, then wait up to 10s\nCtrl-C stops the demo and removes everything it made.\n", plane.KubeconfigPath, repoDir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-reconcilerDone:
		return fmt.Errorf("the reconciler stopped: %w", err)
	}
}

// watchUntil prints each cluster's progress as it happens until done holds.
func (d *demo) watchUntil(ctx context.Context, reconcilerDone <-chan error, seen map[string]map[string]bool, done func([]v1alpha1.VirtualCluster) bool) ([]v1alpha1.VirtualCluster, error) {
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
			if seen[vc.Name] == nil {
				seen[vc.Name] = map[string]bool{}
			}
			for _, t := range []string{v1alpha1.AdmittedCondition, v1alpha1.AppliedCondition, v1alpha1.ReadyCondition} {
				if c := conditions.Get(vc, t); c != nil && c.Status == metav1.ConditionTrue && !seen[vc.Name][t] {
					seen[vc.Name][t] = true
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
		case err := <-reconcilerDone:
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
	if c := conditions.Get(&f, "Ready"); c != nil {
		return fmt.Sprintf("Fleet Ready=%s %s: %s", c.Status, c.Reason, c.Message)
	}
	return "the Fleet has no Ready condition yet"
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

func (d *demo) createFleet(ctx context.Context, repoDir string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fleetNamespace}}
	if err := d.c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	fleet := &v1alpha1.Fleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: fleetNamespace, Name: fleetName},
		Spec: v1alpha1.FleetSpec{
			URL:      repoDir,
			Ref:      &v1alpha1.GitRef{Branch: "main"},
			Interval: metav1.Duration{Duration: 10 * time.Second},
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
	deadline := time.Now().Add(d.opts.Timeout)
	for {
		var ns corev1.Namespace
		err := d.c.Get(ctx, client.ObjectKey{Name: name}, &ns)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s still exists after %s", name, d.opts.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var author = &object.Signature{Name: "warren demo", Email: "demo@warren.invalid"}

// makeRepository writes the embedded example fleet to dir and commits it on main.
func makeRepository(dir string) (*git.Repository, error) {
	sub, err := fs.Sub(examples.Fleet, "fleet")
	if err != nil {
		return nil, err
	}
	if err := os.CopyFS(dir, sub); err != nil {
		return nil, fmt.Errorf("writing the example fleet: %w", err)
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: "refs/heads/main"}})
	if err != nil {
		return nil, fmt.Errorf("creating the example repository: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, err
	}
	if err := wt.AddGlob("."); err != nil {
		return nil, err
	}
	return repo, commit(wt, "Example fleet: two teams, three clusters")
}

func removeAndCommit(repo *git.Repository, dir, path, message string) error {
	if path == "" || strings.Contains(path, "..") {
		return errors.New("the cluster does not say which file defines it")
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if _, err := wt.Remove(filepath.ToSlash(path)); err != nil {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return commit(wt, message)
}

func commit(wt *git.Worktree, message string) error {
	sig := *author
	sig.When = time.Now()
	_, err := wt.Commit(message, &git.CommitOptions{Author: &sig})
	return err
}
