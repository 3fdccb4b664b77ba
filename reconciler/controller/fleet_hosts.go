package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/reconciler/render"
)

// hostTarget is one host a Fleet reconcile writes to.
type hostTarget struct {
	name string
	// applier writes to the host as the Fleet; nil when down is set.
	applier *apply.Applier
	// render is what rendering needs of this host (its ranges).
	render render.Options
	// down says why the host cannot be written to in this reconcile: its
	// clusters are kept as last applied and nothing on it is pruned.
	down error
	// previous are the entries of the previous inventory on this host,
	// picked out once per reconcile (hostsPhase): each cluster's PKI
	// Secret and render reads them, and at 5,000 clusters picking them out
	// per cluster was quadratic.
	previous *apply.Inventory
}

// hostsOf is the registry of hosts, the local one alone when Run did not
// set one (tests that build a FleetReconciler by hand).
func (r *FleetReconciler) hostsOf() *hostRegistry {
	if r.hosts == nil {
		r.hosts = &hostRegistry{local: &hostConn{name: v1alpha1.LocalHost, client: r.ApplyClient}, reader: r.APIReader}
	}
	return r.hosts
}

// target opens the named host for the Fleet: the local one as the reconciler
// was started, a remote one through its HostCluster, which must answer and
// have had its ranges detected.
func (r *FleetReconciler) target(ctx context.Context, fleet *v1alpha1.Fleet, local *apply.Applier, name string) *hostTarget {
	t := &hostTarget{name: name, render: r.Render}
	if name == v1alpha1.LocalHost {
		t.applier = local
		return t
	}
	conn, hc, err := r.hostsOf().connect(ctx, fleet.Namespace, name)
	switch {
	case err != nil:
		t.down = err
	case hc.Status.ServiceCIDR == "":
		t.down = fmt.Errorf("HostCluster %s has not been checked yet: %s", name, cmp.Or(hc.Status.LastError, "waiting for its first check"))
	default:
		t.down = probe(ctx, conn)
	}
	if t.down != nil {
		return t
	}
	t.render.ServiceCIDR, t.render.NodePortRange = hc.Status.ServiceCIDR, hc.Status.NodePortRange
	t.applier, t.down = apply.New(conn.client, apply.Owner{Namespace: fleet.Namespace, Name: fleet.Name}, apply.Options{})
	return t
}

// targets opens every host named.
func (r *FleetReconciler) targets(ctx context.Context, fleet *v1alpha1.Fleet, local *apply.Applier, names map[string]bool) map[string]*hostTarget {
	out := map[string]*hostTarget{}
	for _, name := range sortedKeys(names) {
		t := r.target(ctx, fleet, local, name)
		out[name] = t
		if t.down != nil {
			r.event(fleet, corev1.EventTypeWarning, v1alpha1.HostUnreachableReason, fmt.Sprintf("host %s: %s; its clusters are kept as last applied", name, t.down))
		}
	}
	return out
}

// inventoryHosts are the hosts inv has objects on.
func inventoryHosts(inv *apply.Inventory, into map[string]bool) map[string]bool {
	if inv != nil {
		for _, e := range inv.Entries {
			into[entryHost(e)] = true
		}
	}
	return into
}

// hostsPhase opens every host the Fleet's clusters are on or asked for. A
// host that is down holds its clusters as last applied: an admitted one is
// not written (it fails, naming the host), a removed one is kept until
// the host answers again. The other hosts go on.
func (r *FleetReconciler) hostsPhase(ctx context.Context, s *fleetScope) error {
	s.hostOf = map[string]string{}
	for name, vc := range s.existing {
		s.hostOf[name] = v1alpha1.HostOf(vc.Spec)
	}
	for name, a := range s.desired {
		s.hostOf[name] = a.Host
	}
	needed := map[string]bool{v1alpha1.LocalHost: true}
	for _, h := range s.hostOf {
		needed[h] = true
	}
	s.hosts = r.targets(ctx, s.fleet, s.applier, inventoryHosts(s.previous, needed))
	for name, t := range s.hosts {
		t.previous = onHost(s.previous, name)
	}
	s.skip, s.failed = map[string]bool{}, map[string]string{}
	for _, name := range sortedKeys(s.desired) {
		if t := s.hosts[s.hostOf[name]]; t.down != nil {
			s.skip[name] = true
			s.failed[name] = fmt.Sprintf("host %s is unreachable (%s)", t.name, t.down)
		}
	}
	var removed []string
	for _, name := range s.removed {
		if t := s.hosts[s.hostOf[name]]; t.down != nil {
			s.kept[name] = fmt.Sprintf("removed from Git, but host %s is unreachable: pruned once it answers", t.name)
			continue
		}
		removed = append(removed, name)
	}
	s.removed = removed
	return nil
}

// downHosts describes the hosts that are down, for the Fleet's Ready
// condition; empty when every host answers.
func (s *fleetScope) downHosts() string {
	var parts []string
	for _, name := range sortedKeys(s.hosts) {
		if t := s.hosts[name]; t.down != nil {
			var held []string
			for _, c := range sortedKeys(s.hostOf) {
				if s.hostOf[c] == name {
					held = append(held, c)
				}
			}
			parts = append(parts, fmt.Sprintf("host %s is unreachable (%s); its %d cluster(s) are kept as last applied and nothing on it is pruned: %s",
				name, t.down, len(held), joinLimited(held)))
		}
	}
	return strings.Join(parts, "; ")
}

// entryHost is the host an inventory entry's object is on.
func entryHost(e apply.Entry) string {
	if e.Host == "" {
		return v1alpha1.LocalHost
	}
	return e.Host
}

// onHost are inv's entries on host.
func onHost(inv *apply.Inventory, host string) *apply.Inventory {
	if inv == nil {
		return nil
	}
	var out []apply.Entry
	for _, e := range inv.Entries {
		if entryHost(e) == host {
			out = append(out, e)
		}
	}
	return apply.Entries(out)
}

// placedOn marks entries as objects on host.
func placedOn(entries []apply.Entry, host string) []apply.Entry {
	if host == v1alpha1.LocalHost {
		host = ""
	}
	for i := range entries {
		entries[i].Host = host
	}
	return entries
}

// byHost groups rendered objects by the host their cluster is on; all of
// them, not a copy, when they are on one host.
func (s *fleetScope) byHost() map[string][]apply.Object {
	hosts := make([]string, len(s.objects))
	for i, o := range s.objects {
		hosts[i] = s.hostOf[s.clusterOf[o.Ref().String()]]
	}
	if len(s.objects) > 0 && !slices.ContainsFunc(hosts, func(h string) bool { return h != hosts[0] }) {
		return map[string][]apply.Object{hosts[0]: s.objects}
	}
	out := map[string][]apply.Object{}
	for i, o := range s.objects {
		out[hosts[i]] = append(out[hosts[i]], o)
	}
	return out
}

// applyHosts applies each host's objects with its own applier and
// previous entries. A remote host that fails fails its clusters (kept as
// last applied, nothing of theirs pruned) and the others go on; the local
// host's failure is returned, as before there were hosts.
func (r *FleetReconciler) applyHosts(ctx context.Context, s *fleetScope) (*apply.Result, error) {
	all := &apply.Result{Inventory: &apply.Inventory{}}
	var localErr error
	groups := s.byHost()
	for _, name := range sortedKeys(groups) {
		t := s.hosts[name]
		res, err := t.applier.ApplyObjects(ctx, groups[name], r.rerender(s, t), t.previous)
		if res == nil {
			res = &apply.Result{}
		}
		if res.Inventory != nil {
			all.Inventory = apply.Merge(all.Inventory, apply.Entries(placedOn(res.Inventory.Entries, name)))
		}
		all.Changes = append(all.Changes, res.Changes...)
		all.Conflicts = append(all.Conflicts, res.Conflicts...)
		all.Failures = append(all.Failures, res.Failures...)
		all.Unrendered = append(all.Unrendered, res.Unrendered...)
		all.Untracked = append(all.Untracked, placedOn(res.Untracked, name)...)
		switch {
		case err == nil:
		case name == v1alpha1.LocalHost:
			localErr = err
		default:
			for c, h := range s.hostOf {
				if h == name && !s.skip[c] {
					s.failed[c] = fmt.Sprintf("applying to host %s: %s", name, err)
				}
			}
			all.Inventory = apply.Merge(all.Inventory, t.previous)
		}
	}
	return all, localErr
}

// pruneHosts deletes stale objects host by host and waits, within
// pruneWait, for removed clusters to be gone. A host that is down (or
// unknown) keeps its stale objects (keep: still in the inventory), deleting
// nothing.
func (r *FleetReconciler) pruneHosts(ctx context.Context, hosts map[string]*hostTarget, stale []apply.Entry) (res *apply.PruneResult, keep []apply.Entry, err error) {
	res = &apply.PruneResult{}
	groups := map[string][]apply.Entry{}
	for _, e := range stale {
		groups[entryHost(e)] = append(groups[entryHost(e)], e)
	}
	var errs []error
	for _, name := range sortedKeys(groups) {
		t := hosts[name]
		if t == nil || t.down != nil {
			keep = append(keep, groups[name]...)
			continue
		}
		one, perr := t.applier.Prune(ctx, groups[name])
		if perr != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", name, perr))
			keep = append(keep, groups[name]...)
			continue
		}
		res.Deleted = append(res.Deleted, one.Deleted...)
		res.Skipped = append(res.Skipped, one.Skipped...)
		waitCtx, cancel := context.WithTimeout(ctx, pruneWait)
		werr := t.applier.WaitForDeletion(waitCtx, clusterRoots(one.Deleted))
		cancel()
		if werr != nil {
			errs = append(errs, fmt.Errorf("host %s: waiting for pruned clusters to be gone: %w", name, werr))
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].ID < keep[j].ID })
	return res, keep, errors.Join(errs...)
}

// clusterRoots are the deleted objects whose going takes a while: a
// cluster's namespace and VirtualCluster.
func clusterRoots(deleted []apply.ObjectRef) []apply.ObjectRef {
	var out []apply.ObjectRef
	for _, ref := range deleted {
		if ref.Kind == "Namespace" || ref.Kind == v1alpha1.VirtualClusterKind {
			out = append(out, ref)
		}
	}
	return out
}

// markHostsDown is the Fleet's Ready condition when hosts are down.
func markHostsDown(s *fleetScope) bool {
	down := s.downHosts()
	if down == "" {
		return false
	}
	conditions.MarkFalse(s.fleet, meta.ReadyCondition, v1alpha1.HostUnreachableReason, "revision %s: %s", s.revision, down)
	return true
}
