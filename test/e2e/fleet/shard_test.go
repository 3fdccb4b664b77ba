package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

// shardedFleet is one Fleet of the sharding story.
type shardedFleet struct {
	name     string // its namespace, tenant and cluster prefix
	shard    string
	clusters []string
	key      client.ObjectKey
	sha      string
}

func shardSelector(shard string) string { return v1alpha1.ShardingKeyLabel + "=" + shard }

// Two warren-reconciler processes, shard1 and shard2 (Flux's convention:
// --watch-label-selector=sharding.fluxcd.io/key=<shard>), each with leader
// election on, and three Fleets: alpha and gamma labelled shard1, beta
// shard2. Each Fleet is reconciled by its shard alone: its status says so
// (status.shard), and the host API server's audit log, which records each
// request's user agent (a shard names itself in it), shows every write for
// a Fleet, its clusters and their host objects coming from that shard and
// none from the other. Each shard holds a Lease of its own. Then gamma's
// label moves it to shard2: shard2 adopts it, shard1 writes nothing more
// for it, and nothing is pruned or replaced.
func TestTwoShardsEachReconcileOnlyTheirFleets(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs a local control plane and a built reconciler (not in -short mode)")
	}
	// A plane of its own: its API server keeps an audit log.
	plane := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1, NodePortRange: hostNodePorts, AuditLog: true})
	if err := testkit.InstallCRDs(t.Context(), plane.Config); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, plane)
	const leaseNS = "e2e-shards"
	if err := h.c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNS}}); err != nil {
		t.Fatal(err)
	}
	fleets := []*shardedFleet{{name: "alpha", shard: "shard1"}, {name: "beta", shard: "shard2"}, {name: "gamma", shard: "shard1"}}
	for _, f := range fleets {
		f.clusters = clusterNames(f.name, 2)
		var repo *fleetRepo
		repo, f.sha = newFleetRepo(t, t.TempDir(), f.name, f.name, f.clusters...)
		// A long interval: no periodic pass runs while the story looks.
		f.key = h.createFleet("e2e-shard-"+f.name, fleetSpec{url: repo.FileURL(), interval: 10 * time.Minute,
			labels: map[string]string{v1alpha1.ShardingKeyLabel: f.shard}})
	}
	for _, shard := range []string{"shard1", "shard2"} {
		startReconciler(t, plane, reconcilerOptions{flags: []string{"--watch-label-selector=" + shardSelector(shard),
			"--enable-leader-election", "--leader-election-namespace=" + leaseNS}})
	}
	for _, f := range fleets {
		h.waitFleetApplied(f.key, f.sha, 4*time.Minute)
		h.waitClustersReady(3*time.Minute, f.clusters...)
	}
	audit := newAuditCount(h, plane, fleets)
	for _, f := range fleets {
		h.assertReconciledBy(f, f.shard, audit.writes(0))
	}
	h.assertOneLeasePerShard(leaseNS)

	// gamma moves to shard2.
	gamma := fleets[2]
	before, pki, mark := h.snapshot(gamma.clusters...), h.pkiUIDs(gamma.clusters...), audit.size()
	h.relabel(gamma.key, v1alpha1.ShardingKeyLabel, "shard2")
	testkit.Eventually(t, 2*time.Minute, "gamma reconciled by shard2", func() (bool, string) {
		f := h.fleet(gamma.key)
		return f.Status.Shard == shardSelector("shard2"), "status.shard " + f.Status.Shard + "; " + fleetState(f)
	})
	h.waitFleetApplied(gamma.key, gamma.sha, time.Minute)
	gamma.shard = "shard2"
	since := audit.writes(mark)
	h.assertReconciledBy(gamma, "shard2", since)
	for who, n := range since.deletes {
		t.Errorf("%s deleted %d object(s) after gamma moved; moving a Fleet must prune nothing", who, n)
	}
	h.assertUnchanged(before, gamma.clusters...)
	h.assertConvergedExactlyOnce(h.fleet(gamma.key), gamma.clusters, pki)
	h.assertNoEvent(gamma.key, "Pruned")
}

// assertReconciledBy checks the Fleet's status names shard and that every
// write the audit log attributes to the Fleet came from shard.
func (h *host) assertReconciledBy(f *shardedFleet, shard string, w auditWrites) {
	h.t.Helper()
	if got := h.fleet(f.key).Status.Shard; got != shardSelector(shard) {
		h.t.Errorf("Fleet %s: status.shard %q, want %q", f.name, got, shardSelector(shard))
	}
	h.t.Logf("writes for Fleet %s by user agent: %v", f.name, w.byFleet[f.name])
	for ua, n := range w.byFleet[f.name] {
		if !strings.Contains(ua, "(shard "+shardSelector(shard)+")") {
			h.t.Errorf("Fleet %s (%s) was written %d time(s) by %q", f.name, shard, n, ua)
		}
	}
	if w.byFleet[f.name][shardUserAgent(w, shard)] == 0 {
		h.t.Errorf("the audit log shows no write by %s for Fleet %s", shard, f.name)
	}
}

// shardUserAgent is the user agent of shard's writes in w.
func shardUserAgent(w auditWrites, shard string) string {
	for _, counts := range w.byFleet {
		for ua := range counts {
			if strings.Contains(ua, "(shard "+shardSelector(shard)+")") {
				return ua
			}
		}
	}
	return ""
}

// assertOneLeasePerShard checks two shards hold two different Leases.
func (h *host) assertOneLeasePerShard(ns string) {
	h.t.Helper()
	var leases coordinationv1.LeaseList
	if err := h.c.List(context.Background(), &leases, client.InNamespace(ns)); err != nil {
		h.t.Fatal(err)
	}
	held := map[string]string{}
	for _, l := range leases.Items {
		if strings.HasPrefix(l.Name, "warren-reconciler-leader-") && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			held[l.Name] = *l.Spec.HolderIdentity
		}
	}
	holders := map[string]bool{}
	for _, holder := range held {
		holders[holder] = true
	}
	if len(held) != 2 || len(holders) != 2 {
		h.t.Errorf("want two shard Leases held by two replicas, got %v", held)
	}
}

func (h *host) relabel(key client.ObjectKey, label, value string) {
	h.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, label, value)
	f := &v1alpha1.Fleet{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := h.c.Patch(context.Background(), f, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		h.t.Fatalf("labelling Fleet %s: %v", key, err)
	}
}

func (h *host) assertNoEvent(key client.ObjectKey, reason string) {
	h.t.Helper()
	var events corev1.EventList
	if err := h.c.List(context.Background(), &events, client.InNamespace(key.Namespace)); err != nil {
		h.t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == reason {
			h.t.Errorf("Fleet %s: event %s: %s", key, e.Reason, e.Message)
		}
	}
}

// ---- the audit log

// auditCount attributes warren's writes in the API server's audit log
// (localplane's AuditWrites) to the Fleets: by the Fleet's namespace, a
// cluster's name or its host namespace.
type auditCount struct {
	t       testing.TB
	plane   *localkube.Plane
	fleetOf map[string]string // "ns/<namespace>" or "vc/<cluster>" → Fleet
}

// auditWrites are warren's write requests from a point of the log on.
type auditWrites struct {
	byFleet map[string]map[string]int // Fleet → user agent → writes
	deletes map[string]int            // user agent → deletes, any object
}

func newAuditCount(h *host, plane *localkube.Plane, fleets []*shardedFleet) *auditCount {
	a := &auditCount{t: h.t, plane: plane, fleetOf: map[string]string{}}
	for _, f := range fleets {
		a.fleetOf["ns/"+f.key.Namespace] = f.name
		for _, c := range f.clusters {
			vc, ok := h.virtualCluster(c)
			if !ok {
				h.t.Fatalf("VirtualCluster %s is missing", c)
			}
			a.fleetOf["vc/"+c] = f.name
			a.fleetOf["ns/"+render.NamesFor(vc).Namespace] = f.name
		}
	}
	return a
}

// read is every write the log holds now, oldest first.
func (a *auditCount) read() []localkube.AuditWrite {
	a.t.Helper()
	all, err := a.plane.AuditWrites()
	if err != nil {
		a.t.Fatal(err)
	}
	return all
}

// size is how many writes the log holds now: writes(size()) counts what
// comes after.
func (a *auditCount) size() int { return len(a.read()) }

// writes counts warren-reconciler's write requests from the from-th on.
func (a *auditCount) writes(from int) auditWrites {
	a.t.Helper()
	w := auditWrites{byFleet: map[string]map[string]int{}, deletes: map[string]int{}}
	for _, e := range a.read()[from:] {
		if !strings.HasPrefix(e.UserAgent, "warren-reconciler/") {
			continue
		}
		if e.Verb == "delete" || e.Verb == "deletecollection" {
			w.deletes[e.UserAgent]++
		}
		if fleet := a.fleetOfWrite(e); fleet != "" {
			if w.byFleet[fleet] == nil {
				w.byFleet[fleet] = map[string]int{}
			}
			w.byFleet[fleet][e.UserAgent]++
		}
	}
	return w
}

func (a *auditCount) fleetOfWrite(e localkube.AuditWrite) string {
	switch e.Resource {
	case "virtualclusters":
		return a.fleetOf["vc/"+e.Name]
	case "namespaces":
		return a.fleetOf["ns/"+e.Name]
	case "leases":
		return ""
	}
	return a.fleetOf["ns/"+e.Namespace]
}
