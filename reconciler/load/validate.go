package load

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// MaxClusterNameLength leaves room for every host name derived from a
// cluster name N: the StatefulSet's controller-revision-hash label value
// "N-<hash of up to 10 characters>" must fit in 63 characters (this is the
// tightest; "N-headless", pod "N-0" and namespace "vc-N" fit with it).
const MaxClusterNameLength = 63 - 1 - 10

// versionRE matches vMAJOR.MINOR.PATCH with an optional k3s build suffix.
var versionRE = regexp.MustCompile(`^v1\.(\d+)\.(\d+)(\+k3s\d+)?$`)

type checker struct {
	src      Source
	problems []Problem
}

func (c *checker) add(field, format string, args ...any) {
	c.problems = append(c.problems, problemf(c.src.File, c.src.LineOf(field), field, format, args...))
}

func (c *checker) dns(field, value string, check func(string) []string) {
	for _, msg := range check(value) {
		c.add(field, "%q is not valid: %s", value, msg)
	}
}

func (c *checker) required(field, value string) bool {
	if strings.TrimSpace(value) == "" {
		c.add(field, "required")
		return false
	}
	return true
}

func (c *checker) pattern(field, p string) {
	if _, err := path.Match(p, ""); err != nil {
		c.add(field, "%q is not a valid glob pattern: %v", p, err)
	}
}

func (c *checker) quantities(prefix string, r v1alpha1.ClusterResources) {
	for _, q := range []struct {
		name string
		v    *resource.Quantity
	}{{"cpu", r.CPU}, {"memory", r.Memory}, {"storage", r.Storage}, {"pods", r.Pods}} {
		if q.v == nil {
			continue
		}
		if q.v.Sign() < 0 {
			c.add(prefix+"."+q.name, "must not be negative, found %s", q.v.String())
		}
		if q.name == "pods" && q.v.MilliValue()%1000 != 0 {
			c.add(prefix+".pods", "must be a whole number, found %s", q.v.String())
		}
	}
}

func (c *checker) subject(field string, s v1alpha1.Subject, allowPatterns bool) {
	switch s.Kind {
	case v1alpha1.SubjectUser, v1alpha1.SubjectGroup:
		if s.Namespace != "" {
			c.add(field+".namespace", "only ServiceAccount subjects have a namespace")
		}
	case v1alpha1.SubjectServiceAccount:
		if !allowPatterns && c.required(field+".namespace", s.Namespace) {
			c.dns(field+".namespace", s.Namespace, validation.IsDNS1123Label)
		}
	case "":
		c.add(field+".kind", "required: User, Group or ServiceAccount")
	default:
		c.add(field+".kind", "%q is not one of User, Group, ServiceAccount", s.Kind)
	}
	c.required(field+".name", s.Name)
	if allowPatterns {
		c.pattern(field+".name", s.Name)
	}
}

func validateCluster(vc *v1alpha1.VirtualCluster, src Source) []Problem {
	c := &checker{src: src}
	name := vc.Name
	if c.required("metadata.name", name) {
		if len(name) > MaxClusterNameLength {
			c.add("metadata.name", "%q is %d characters, over the limit of %d that leaves room for the host names derived from it (namespace vc-<name>, Service <name>-headless, pod <name>-0, the StatefulSet's revision label <name>-<hash>)",
				name, len(name), MaxClusterNameLength)
		} else {
			c.dns("metadata.name", name, validation.IsDNS1035Label)
		}
	}
	s := vc.Spec
	c.required("spec.tenant", s.Tenant)
	switch s.Distro {
	case "", v1alpha1.DistroK3s, v1alpha1.DistroK8s:
	default:
		c.add("spec.distro", "%q is not one of k3s, k8s", s.Distro)
	}
	if s.Version != "" {
		m := versionRE.FindStringSubmatch(s.Version)
		switch {
		case m == nil:
			c.add("spec.version", "%q is not a Kubernetes version like v1.33.5 (k3s may add +k3s1)", s.Version)
		case m[3] != "" && s.Distro == v1alpha1.DistroK8s:
			c.add("spec.version", "%q has a k3s build suffix but the distro is k8s", s.Version)
		}
	}
	if s.Host != "" {
		c.dns("spec.host", s.Host, validation.IsDNS1123Label)
	}
	c.hostNamespace(name, s.HostNamespace)
	c.workloads("spec.workloads", s.Workloads, false)
	c.quantities("spec.resources", s.Resources)
	switch s.Sync.Nodes {
	case "", v1alpha1.NodesFake, v1alpha1.NodesReal:
	default:
		c.add("spec.sync.nodes", "%q is not one of fake, real", s.Sync.Nodes)
	}
	switch s.Expose.Type {
	case "", v1alpha1.ExposeClusterIP, v1alpha1.ExposeNodePort, v1alpha1.ExposeLoadBalancer:
		if s.Expose.Host != "" {
			c.add("spec.expose.host", "only used with type Ingress")
		}
	case v1alpha1.ExposeIngress:
		if c.required("spec.expose.host", s.Expose.Host) {
			c.dns("spec.expose.host", s.Expose.Host, validation.IsDNS1123Subdomain)
		}
	default:
		c.add("spec.expose.type", "%q is not one of ClusterIP, NodePort, LoadBalancer, Ingress", s.Expose.Type)
	}
	if s.Expose.IngressClassName != "" {
		c.dns("spec.expose.ingressClassName", s.Expose.IngressClassName, validation.IsDNS1123Subdomain)
	}
	for i, g := range s.Access {
		f := fmt.Sprintf("spec.access[%d]", i)
		c.required(f+".clusterRole", g.ClusterRole)
		if len(g.Subjects) == 0 {
			c.add(f+".subjects", "required: at least one subject")
		}
		for j, sub := range g.Subjects {
			c.subject(fmt.Sprintf("%s.subjects[%d]", f, j), sub, false)
		}
	}
	if k := s.Kubeconfig; k != nil {
		if c.required("spec.kubeconfig.namespace", k.Namespace) {
			c.dns("spec.kubeconfig.namespace", k.Namespace, validation.IsDNS1123Label)
		}
		if c.required("spec.kubeconfig.name", k.Name) {
			c.dns("spec.kubeconfig.name", k.Name, validation.IsDNS1123Subdomain)
		}
	}
	return c.problems
}

func validatePolicy(p *v1alpha1.TenantPolicy, src Source) []Problem {
	c := &checker{src: src}
	if c.required("metadata.name", p.Name) {
		c.dns("metadata.name", p.Name, validation.IsDNS1123Subdomain)
	}
	s := p.Spec
	c.required("spec.tenant", s.Tenant)
	if s.MaxClusters == nil {
		c.add("spec.maxClusters", "required: how many clusters the tenant may have")
	} else if *s.MaxClusters < 0 {
		c.add("spec.maxClusters", "must not be negative")
	}
	for i, sub := range s.Subjects {
		c.subject(fmt.Sprintf("spec.subjects[%d]", i), sub, false)
	}
	for i, pat := range s.ClusterNames {
		c.pattern(fmt.Sprintf("spec.clusterNames[%d]", i), pat)
	}
	c.quantities("spec.perCluster", s.PerCluster)
	c.quantities("spec.total", s.Total)
	for i, d := range s.Distros {
		f := fmt.Sprintf("spec.distros[%d]", i)
		switch d.Name {
		case v1alpha1.DistroK3s, v1alpha1.DistroK8s:
		default:
			c.add(f+".name", "%q is not one of k3s, k8s", d.Name)
		}
		for j, v := range d.Versions {
			c.pattern(fmt.Sprintf("%s.versions[%d]", f, j), v)
		}
	}
	for i, t := range s.Expose.Types {
		switch t {
		case v1alpha1.ExposeClusterIP, v1alpha1.ExposeNodePort, v1alpha1.ExposeLoadBalancer, v1alpha1.ExposeIngress:
		default:
			c.add(fmt.Sprintf("spec.expose.types[%d]", i), "%q is not one of ClusterIP, NodePort, LoadBalancer, Ingress", t)
		}
	}
	for i, h := range s.Expose.Hosts {
		c.pattern(fmt.Sprintf("spec.expose.hosts[%d]", i), h)
	}
	for i, g := range s.Grants {
		f := fmt.Sprintf("spec.grants[%d]", i)
		if len(g.ClusterRoles) == 0 {
			c.add(f+".clusterRoles", "required: at least one cluster role")
		}
		for j, r := range g.ClusterRoles {
			c.pattern(fmt.Sprintf("%s.clusterRoles[%d]", f, j), r)
		}
		if len(g.Subjects) == 0 && len(s.Subjects) == 0 {
			c.add(f+".subjects", "required: at least one subject (or spec.subjects, which an allowance without subjects refers to)")
		}
		for j, sub := range g.Subjects {
			c.subject(fmt.Sprintf("%s.subjects[%d]", f, j), sub, true)
		}
	}
	for i, ns := range s.KubeconfigNamespaces {
		c.pattern(fmt.Sprintf("spec.kubeconfigNamespaces[%d]", i), ns)
	}
	for i, h := range s.Hosts {
		c.dns(fmt.Sprintf("spec.hosts[%d]", i), h, validation.IsDNS1123Label)
	}
	for i, ns := range s.HostNamespaces {
		c.namespacePattern(fmt.Sprintf("spec.hostNamespaces[%d]", i), ns)
	}
	c.workloads("spec.workloads", s.Workloads, true)
	switch s.PodSecurity {
	case "", v1alpha1.PodSecurityBaseline, v1alpha1.PodSecurityRestricted:
	default:
		c.add("spec.podSecurity", "%q is not one of baseline, restricted", s.PodSecurity)
	}
	return c.problems
}
