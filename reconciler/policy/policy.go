// Package policy admits a fleet repository's VirtualCluster definitions
// against their tenant's TenantPolicy: a definition is admitted only when
// its policy allows every field it sets, and the tenant's totals (cluster
// count and resources) stay within the policy. It judges loaded documents
// only; it never reads files, talks to an API server or runs Git.
package policy

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
)

// Admission is a cluster its tenant's policy admitted.
type Admission struct {
	Cluster load.Cluster
	Policy  load.Policy
	// Host is the host cluster it runs on: its spec.host, else the
	// default host.
	Host string
}

// Options tune admission.
type Options struct {
	// Existing names clusters that already run. When a tenant's totals do
	// not fit, they are counted before newcomers, so a new definition is
	// rejected rather than a running cluster. Others are counted by name.
	Existing []string
	// ReservedNamespaces are host namespaces no cluster may use besides
	// the ones always reserved (load.ReservedNamespace): the namespace the
	// reconciler runs in.
	ReservedNamespaces []string
	// DefaultHost is the host of definitions that name none, which every
	// tenant may use (the Fleet's spec.defaultHost); v1alpha1.LocalHost
	// when empty.
	DefaultHost string
	// ExistingHosts are the hosts running clusters are on, by name. A
	// definition naming another host for one of them is refused: a
	// cluster cannot move between hosts.
	ExistingHosts map[string]string
}

// defaultHost is o.DefaultHost, LocalHost when empty.
func (o Options) defaultHost() string {
	if o.DefaultHost == "" {
		return v1alpha1.LocalHost
	}
	return o.DefaultHost
}

// Admit judges every cluster of repo. It returns the admitted clusters
// sorted by name, and one problem per rejected field, sorted, each naming
// the policy that rejected it.
func Admit(repo *load.Repository, o Options) ([]Admission, []load.Problem) {
	existing := map[string]bool{}
	for _, n := range o.Existing {
		existing[n] = true
	}
	byTenant := map[string][]load.Cluster{}
	var problems []load.Problem
	for _, c := range repo.Clusters {
		byTenant[c.Object.Spec.Tenant] = append(byTenant[c.Object.Spec.Tenant], c)
	}
	var admitted []Admission
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, tenant := range tenants {
		clusters := byTenant[tenant]
		p, ok := repo.PolicyFor(tenant)
		if !ok {
			for _, c := range clusters {
				problems = append(problems, load.Problem{
					File: c.Source.File, Line: c.Source.LineOf("spec.tenant"), Field: "spec.tenant",
					Message: fmt.Sprintf("no TenantPolicy covers tenant %q; a cluster is admitted only under its tenant's policy", tenant),
				})
			}
			continue
		}
		sort.SliceStable(clusters, func(i, j int) bool {
			a, b := existing[clusters[i].Object.Name], existing[clusters[j].Object.Name]
			if a != b {
				return a
			}
			return clusters[i].Object.Name < clusters[j].Object.Name
		})
		t := &totals{policy: p}
		for _, c := range clusters {
			j := &judge{cluster: c, policy: p}
			j.fields()
			j.hostNamespace(o.ReservedNamespaces)
			host := j.host(o)
			j.workloads(c.Object.Spec.Workloads, p.Object.Spec.Workloads)
			if len(j.problems) == 0 {
				t.fit(j)
			}
			if len(j.problems) == 0 {
				admitted = append(admitted, Admission{Cluster: c, Policy: p, Host: host})
			}
			problems = append(problems, j.problems...)
		}
	}
	sort.Slice(admitted, func(i, j int) bool {
		return admitted[i].Cluster.Object.Name < admitted[j].Cluster.Object.Name
	})
	load.Sort(problems)
	return admitted, problems
}

type judge struct {
	cluster  load.Cluster
	policy   load.Policy
	problems []load.Problem
}

func (j *judge) reject(field, format string, args ...any) {
	src := j.cluster.Source
	j.problems = append(j.problems, load.Problem{
		File:    src.File,
		Line:    src.LineOf(field),
		Field:   field,
		Policy:  j.policy.Object.Name,
		Message: fmt.Sprintf("policy %q: ", j.policy.Object.Name) + fmt.Sprintf(format, args...),
	})
}

func matchAny(patterns []string, value string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, value); ok {
			return true
		}
	}
	return false
}

func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}

func (j *judge) fields() {
	vc := j.cluster.Object
	s := vc.Spec
	ps := j.policy.Object.Spec

	if len(ps.ClusterNames) > 0 && !matchAny(ps.ClusterNames, vc.Name) {
		j.reject("metadata.name", "cluster name %q matches none of the allowed patterns (%s)", vc.Name, list(ps.ClusterNames))
	}

	j.distro(s, ps)
	j.perCluster(s.Resources, ps.PerCluster)

	if s.Sync.Ingresses && !ps.Sync.Ingresses {
		j.reject("spec.sync.ingresses", "syncing ingresses is not allowed")
	}
	if s.Sync.StorageClasses && !ps.Sync.StorageClasses {
		j.reject("spec.sync.storageClasses", "syncing storage classes is not allowed")
	}
	if s.Sync.NodePorts && !ps.Sync.NodePorts {
		j.reject("spec.sync.nodePorts", "NodePort services are not allowed (they would open ports on every host node)")
	}
	if s.Sync.LoadBalancers && !ps.Sync.LoadBalancers {
		j.reject("spec.sync.loadBalancers", "LoadBalancer services are not allowed (they would ask the host for load balancers)")
	}
	if s.Sync.Nodes == v1alpha1.NodesReal && !ps.Sync.RealNodes {
		j.reject("spec.sync.nodes", "real nodes are not allowed (the syncer would need read access to host nodes); use fake")
	}

	if t := s.Expose.Type; t != v1alpha1.ExposeClusterIP && !slices.Contains(ps.Expose.Types, t) {
		allowed := []string{string(v1alpha1.ExposeClusterIP)}
		for _, a := range ps.Expose.Types {
			if a != v1alpha1.ExposeClusterIP {
				allowed = append(allowed, string(a))
			}
		}
		j.reject("spec.expose.type", "expose type %s is not allowed (allowed: %s)", t, list(allowed))
	}
	if s.Expose.Type == v1alpha1.ExposeIngress && !matchAny(ps.Expose.Hosts, s.Expose.Host) {
		j.reject("spec.expose.host", "ingress host %q matches none of the allowed hosts (%s)", s.Expose.Host, list(ps.Expose.Hosts))
	}

	for i, g := range s.Access {
		j.grant(i, g, ps.Grants, ps.Subjects)
	}

	if k := s.Kubeconfig; k != nil && !matchAny(ps.KubeconfigNamespaces, k.Namespace) {
		j.reject("spec.kubeconfig.namespace", "kubeconfig namespace %q is not allowed (allowed: %s)", k.Namespace, list(ps.KubeconfigNamespaces))
	}
}

// host is the host the cluster runs on. A host other than the default
// must be in the policy's spec.hosts, and a running cluster's host cannot
// change.
func (j *judge) host(o Options) string {
	host, asked := j.cluster.Object.Spec.Host, true
	if host == "" {
		host, asked = o.defaultHost(), false
	}
	allowed := j.policy.Object.Spec.Hosts
	if host != o.defaultHost() && !slices.Contains(allowed, host) {
		j.reject("spec.host", "host %q is not allowed (allowed: %s)", host, list(append([]string{o.defaultHost()}, allowed...)))
	}
	if was, ok := o.ExistingHosts[j.cluster.Object.Name]; ok && was != host {
		field := "spec.host"
		if !asked {
			field = "spec"
		}
		j.problems = append(j.problems, load.Problem{
			File: j.cluster.Source.File, Line: j.cluster.Source.LineOf(field), Field: "spec.host",
			Message: fmt.Sprintf("cluster %s runs on host %q; moving it to %q is refused (moving needs snapshot and restore): "+
				"it stays as last applied; to move it empty, remove it and add it again", j.cluster.Object.Name, was, host),
		})
	}
	return host
}

func (j *judge) distro(s v1alpha1.VirtualClusterSpec, ps v1alpha1.TenantPolicySpec) {
	allowances := ps.Distros
	if len(allowances) == 0 {
		allowances = []v1alpha1.DistroAllowance{{Name: v1alpha1.DistroK3s}}
	}
	var names []string
	for _, a := range allowances {
		names = append(names, string(a.Name))
		if a.Name != s.Distro {
			continue
		}
		if len(a.Versions) == 0 || matchAny(a.Versions, s.Version) {
			return
		}
		j.reject("spec.version", "%s version %s is not allowed (allowed: %s)", s.Distro, s.Version, list(a.Versions))
		return
	}
	j.reject("spec.distro", "distro %s is not allowed (allowed: %s)", s.Distro, list(names))
}

type quantity struct {
	name string
	ask  *resource.Quantity
	max  *resource.Quantity
}

func pairs(ask, max v1alpha1.ClusterResources) []quantity {
	return []quantity{
		{"cpu", ask.CPU, max.CPU},
		{"memory", ask.Memory, max.Memory},
		{"storage", ask.Storage, max.Storage},
		{"pods", ask.Pods, max.Pods},
	}
}

func (j *judge) perCluster(ask, max v1alpha1.ClusterResources) {
	for _, q := range pairs(ask, max) {
		if q.max == nil {
			continue
		}
		field := "spec.resources." + q.name
		switch {
		case q.ask == nil:
			j.reject(field, "required: the policy limits each cluster's %s to %s, so the cluster must ask for an amount", q.name, q.max.String())
		case q.ask.Cmp(*q.max) > 0:
			j.reject(field, "%s %s is over the per-cluster limit of %s", q.name, q.ask.String(), q.max.String())
		}
	}
}

func subjectString(s v1alpha1.Subject) string {
	if s.Kind == v1alpha1.SubjectServiceAccount {
		return fmt.Sprintf("%s %s/%s", s.Kind, s.Namespace, s.Name)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Name)
}

func subjectAllowed(allowed []v1alpha1.Subject, s v1alpha1.Subject) bool {
	for _, a := range allowed {
		if a.Kind != s.Kind {
			continue
		}
		if ok, _ := path.Match(a.Name, s.Name); !ok {
			continue
		}
		if a.Kind == v1alpha1.SubjectServiceAccount && a.Namespace != "" {
			if ok, _ := path.Match(a.Namespace, s.Namespace); !ok {
				continue
			}
		}
		return true
	}
	return false
}

func (j *judge) grant(i int, g v1alpha1.AccessGrant, allowances []v1alpha1.GrantAllowance, tenantSubjects []v1alpha1.Subject) {
	field := fmt.Sprintf("spec.access[%d]", i)
	var forRole []v1alpha1.GrantAllowance
	for _, a := range allowances {
		if matchAny(a.ClusterRoles, g.ClusterRole) {
			forRole = append(forRole, a)
		}
	}
	if len(forRole) == 0 {
		var roles []string
		for _, a := range allowances {
			roles = append(roles, a.ClusterRoles...)
		}
		j.reject(field+".clusterRole", "cluster role %q may not be granted (grantable: %s)", g.ClusterRole, list(roles))
		return
	}
	for k, s := range g.Subjects {
		ok := false
		for _, a := range forRole {
			allowed := a.Subjects
			if len(allowed) == 0 {
				allowed = tenantSubjects
			}
			if subjectAllowed(allowed, s) {
				ok = true
				break
			}
		}
		if !ok {
			j.reject(fmt.Sprintf("%s.subjects[%d]", field, k), "cluster role %q may not be granted to %s", g.ClusterRole, subjectString(s))
		}
	}
}

// totals accumulates a tenant's admitted clusters against the policy's
// cluster count and total resource limits.
type totals struct {
	policy load.Policy
	count  int32
	sum    v1alpha1.ClusterResources
}

func add(a *resource.Quantity, b *resource.Quantity) *resource.Quantity {
	out := resource.Quantity{}
	if a != nil {
		out = a.DeepCopy()
	}
	if b != nil {
		out.Add(*b)
	}
	return &out
}

func (t *totals) fit(j *judge) {
	ps := t.policy.Object.Spec
	if ps.MaxClusters != nil && t.count+1 > *ps.MaxClusters {
		j.reject("metadata.name", "tenant %q may have at most %d clusters; this would be cluster %d", ps.Tenant, *ps.MaxClusters, t.count+1)
		return
	}
	ask := j.cluster.Object.Spec.Resources
	next := v1alpha1.ClusterResources{
		CPU:     add(t.sum.CPU, ask.CPU),
		Memory:  add(t.sum.Memory, ask.Memory),
		Storage: add(t.sum.Storage, ask.Storage),
		Pods:    add(t.sum.Pods, ask.Pods),
	}
	for _, q := range pairs(next, ps.Total) {
		if q.max == nil {
			continue
		}
		field := "spec.resources." + q.name
		if own := pairs(ask, ps.Total); ownOf(own, q.name) == nil {
			j.reject(field, "required: the policy limits the tenant's total %s to %s, so the cluster must ask for an amount", q.name, q.max.String())
			continue
		}
		if q.ask.Cmp(*q.max) > 0 {
			j.reject(field, "tenant %q's total %s would be %s, over the total limit of %s", ps.Tenant, q.name, q.ask.String(), q.max.String())
		}
	}
	if len(j.problems) == 0 {
		t.count++
		t.sum = next
	}
}

func ownOf(qs []quantity, name string) *resource.Quantity {
	for _, q := range qs {
		if q.name == name {
			return q.ask
		}
	}
	return nil
}

// Evaluation is what a fleet repository asks for: its definitions, the
// clusters admitted, and every problem, the loader's and admission's,
// sorted. The CLI (validate, render, plan) and the Fleet controller read a
// repository through Evaluate alone, so both judge it the same way.
type Evaluation struct {
	Repo     *load.Repository
	Admitted []Admission
	Problems []load.Problem
}

// Evaluate admits a loaded repository's clusters against its policies;
// loadProblems are what the loader found.
func Evaluate(repo *load.Repository, loadProblems []load.Problem, o Options) Evaluation {
	admitted, rejected := Admit(repo, o)
	problems := append(slices.Clone(loadProblems), rejected...)
	load.Sort(problems)
	return Evaluation{Repo: repo, Admitted: admitted, Problems: problems}
}
