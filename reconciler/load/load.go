package load

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

const (
	// MaxFileSize is the largest file warren reads from a repository.
	MaxFileSize = 1 << 20

	// ClustersDir, PoliciesDir and TemplatesDir are the repository's folders.
	ClustersDir  = "clusters"
	PoliciesDir  = "policies"
	TemplatesDir = "templates"

	maxSymlinkHops = 40
)

// Cluster is one VirtualCluster definition, defaulted, with its source.
type Cluster struct {
	Object *v1alpha1.VirtualCluster
	Source Source
}

// Name is the cluster's name.
func (c Cluster) Name() string { return c.Object.Name }

// Policy is one TenantPolicy, defaulted, with its source.
type Policy struct {
	Object *v1alpha1.TenantPolicy
	Source Source
}

// Name is the policy's name.
func (p Policy) Name() string { return p.Object.Name }

// Repository is everything read from a fleet repository. Clusters are sorted
// by name and policies by tenant. Templates holds the files of the optional
// templates/ overlay, keyed by their path below templates/.
type Repository struct {
	Clusters  []Cluster
	Policies  []Policy
	Templates map[string][]byte
}

// Cluster returns the named cluster.
func (r *Repository) Cluster(name string) (Cluster, bool) {
	for _, c := range r.Clusters {
		if c.Object.Name == name {
			return c, true
		}
	}
	return Cluster{}, false
}

// PolicyFor returns the policy covering tenant.
func (r *Repository) PolicyFor(tenant string) (Policy, bool) {
	for _, p := range r.Policies {
		if p.Object.Spec.Tenant == tenant {
			return p, true
		}
	}
	return Policy{}, false
}

// Dir loads the repository checked out at root. Symbolic links may not lead
// outside root.
func Dir(root string) (*Repository, []Problem, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, nil, fmt.Errorf("reading repository: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("reading repository: %s is not a directory", root)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, fmt.Errorf("reading repository: %w", err)
	}
	defer r.Close()
	return FS(r.FS())
}

// FS loads a repository from a file system whose root is the repository's
// root (a checkout, a Git tree, an in-memory tree). When fsys can read
// symbolic links (fs.ReadLinkFS) links leading outside its root are
// reported and not followed. Every problem is returned, sorted; the
// repository holds the documents that loaded cleanly. The error is for
// failures to read the file system itself.
func FS(fsys fs.FS) (*Repository, []Problem, error) {
	l := &loader{fsys: fsys, repo: &Repository{Templates: map[string][]byte{}}}
	for _, dir := range []string{ClustersDir, PoliciesDir, TemplatesDir} {
		if err := l.walk(dir); err != nil {
			return nil, nil, err
		}
	}
	l.checkUnique()
	l.checkTemplates()
	sort.SliceStable(l.repo.Clusters, func(i, j int) bool {
		return l.repo.Clusters[i].Object.Name < l.repo.Clusters[j].Object.Name
	})
	sort.SliceStable(l.repo.Policies, func(i, j int) bool {
		return l.repo.Policies[i].Object.Spec.Tenant < l.repo.Policies[j].Object.Spec.Tenant
	})
	Sort(l.problems)
	return l.repo, l.problems, nil
}

type loader struct {
	fsys     fs.FS
	repo     *Repository
	problems []Problem
}

func (l *loader) add(p Problem) { l.problems = append(l.problems, p) }

func isYAML(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

func (l *loader) walk(dir string) error {
	if _, err := fs.Stat(l.fsys, dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fs.WalkDir(l.fsys, dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			if name == dir {
				return fmt.Errorf("reading %s: %w", dir, err)
			}
			l.add(problemf(name, 0, "file", "cannot read: %v", err))
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if dir != TemplatesDir && !isYAML(name) {
			return nil // READMEs and the like beside definitions
		}
		data, ok := l.read(name, d)
		if !ok {
			return nil
		}
		switch dir {
		case ClustersDir:
			l.parse(name, data, "VirtualCluster")
		case PoliciesDir:
			l.parse(name, data, "TenantPolicy")
		case TemplatesDir:
			l.repo.Templates[strings.TrimPrefix(name, TemplatesDir+"/")] = data
		}
		return nil
	})
}

// read returns a file's content, following a symbolic link only while it
// stays inside the repository, and refusing files over MaxFileSize.
func (l *loader) read(name string, d fs.DirEntry) ([]byte, bool) {
	target := name
	if d.Type()&fs.ModeSymlink != 0 {
		var err error
		target, err = l.resolve(name)
		if err != nil {
			l.add(problemf(name, 0, "symlink", "%v", err))
			return nil, false
		}
	}
	fi, err := fs.Stat(l.fsys, target)
	if err != nil {
		l.add(problemf(name, 0, "file", "cannot read: %v", err))
		return nil, false
	}
	if fi.IsDir() {
		l.add(problemf(name, 0, "symlink", "links to the directory %s; warren does not follow linked directories, link the files instead", target))
		return nil, false
	}
	if !fi.Mode().IsRegular() {
		l.add(problemf(name, 0, "file", "not a regular file"))
		return nil, false
	}
	if fi.Size() > MaxFileSize {
		l.add(problemf(name, 0, "size", "file is %d bytes, over the %d byte (1 MiB) limit", fi.Size(), MaxFileSize))
		return nil, false
	}
	f, err := l.fsys.Open(target)
	if err != nil {
		l.add(problemf(name, 0, "file", "cannot read: %v", err))
		return nil, false
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		l.add(problemf(name, 0, "file", "cannot read: %v", err))
		return nil, false
	}
	if len(data) > MaxFileSize {
		l.add(problemf(name, 0, "size", "file is over the %d byte (1 MiB) limit", MaxFileSize))
		return nil, false
	}
	return data, true
}

// resolve follows a chain of symbolic links and returns the final path,
// or an error when a link leaves the repository.
func (l *loader) resolve(name string) (string, error) {
	rl, ok := l.fsys.(fs.ReadLinkFS)
	if !ok {
		return name, nil
	}
	cur := name
	for range maxSymlinkHops {
		fi, err := rl.Lstat(cur)
		if err != nil {
			return "", fmt.Errorf("link target %s cannot be read: %w", cur, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return cur, nil
		}
		to, err := rl.ReadLink(cur)
		if err != nil {
			return "", fmt.Errorf("cannot read link: %w", err)
		}
		if path.IsAbs(to) || strings.HasPrefix(to, `\`) || (len(to) > 1 && to[1] == ':') {
			return "", fmt.Errorf("links to %s, outside the repository root", to)
		}
		next := path.Join(path.Dir(cur), to)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", fmt.Errorf("links to %s, outside the repository root", to)
		}
		cur = next
	}
	return "", fmt.Errorf("more than %d links in a row", maxSymlinkHops)
}

var metadataFields = map[string][]string{"metadata": {"name", "labels", "annotations"}}

func (l *loader) parse(file string, data []byte, wantKind string) {
	docs, problems := splitDocuments(file, data)
	l.problems = append(l.problems, problems...)
	for _, doc := range docs {
		if doc.Kind != yaml.MappingNode {
			l.add(problemf(file, doc.Line, "document", "must be a mapping with apiVersion, kind, metadata and spec, found %s", kindName(doc)))
			continue
		}
		if !l.checkHeader(file, doc, wantKind) {
			continue
		}
		src := Source{File: file, Line: doc.Line}
		switch wantKind {
		case "VirtualCluster":
			vc := &v1alpha1.VirtualCluster{}
			lines, ps := decodeStrict(file, doc, vc, withStatusForbidden())
			src.lines = lines
			ps = append(ps, besides(ps, validateCluster(vc, src))...)
			l.problems = append(l.problems, ps...)
			if len(ps) == 0 {
				vc.Default()
				l.repo.Clusters = append(l.repo.Clusters, Cluster{Object: vc, Source: src})
			}
		case "TenantPolicy":
			p := &v1alpha1.TenantPolicy{}
			lines, ps := decodeStrict(file, doc, p, metadataFields)
			src.lines = lines
			ps = append(ps, besides(ps, validatePolicy(p, src))...)
			l.problems = append(l.problems, ps...)
			if len(ps) == 0 {
				p.Default()
				l.repo.Policies = append(l.repo.Policies, Policy{Object: p, Source: src})
			}
		}
	}
}

// besides drops validation problems about fields that already have a
// decoding problem (a mistyped field was left out, so it would also look
// missing).
func besides(decoding, validation []Problem) []Problem {
	var out []Problem
	for _, v := range validation {
		covered := false
		for _, d := range decoding {
			if v.Field == d.Field || strings.HasPrefix(v.Field, d.Field+".") || strings.HasPrefix(v.Field, d.Field+"[") || d.Field == "document" {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, v)
		}
	}
	return out
}

// withStatusForbidden restricts a definition's top level to the fields a
// repository may set: status is the reconciler's, never Git's.
func withStatusForbidden() map[string][]string {
	return map[string][]string{
		"":         {"apiVersion", "kind", "metadata", "spec"},
		"metadata": metadataFields["metadata"],
	}
}

func (l *loader) checkHeader(file string, doc *yaml.Node, wantKind string) bool {
	ok := true
	k, v := field(doc, "apiVersion")
	switch {
	case v == nil:
		l.add(problemf(file, doc.Line, "apiVersion", "missing; want %s", v1alpha1.GroupVersion.String()))
		ok = false
	case v.Value != v1alpha1.GroupVersion.String():
		l.add(problemf(file, k.Line, "apiVersion", "is %q; want %s", v.Value, v1alpha1.GroupVersion.String()))
		ok = false
	}
	k, v = field(doc, "kind")
	switch {
	case v == nil:
		l.add(problemf(file, doc.Line, "kind", "missing; files under %s/ hold %s documents", path.Dir(file), wantKind))
		ok = false
	case v.Value != wantKind:
		top := strings.SplitN(file, "/", 2)[0]
		l.add(problemf(file, k.Line, "kind", "is %q; files under %s/ hold %s documents", v.Value, top, wantKind))
		ok = false
	}
	return ok
}

// checkUnique reports two definitions with one name, two clusters in one
// host namespace, two policies with one name and two policies for one
// tenant. The later one (by file, then line) is dropped and reported.
func (l *loader) checkUnique() {
	sort.SliceStable(l.repo.Clusters, func(i, j int) bool {
		return before(l.repo.Clusters[i].Source, l.repo.Clusters[j].Source)
	})
	names := map[string]Source{}
	namespaces := map[string]Source{}
	var clusters []Cluster
	for _, c := range l.repo.Clusters {
		if first, dup := names[c.Object.Name]; dup {
			l.add(problemf(c.Source.File, c.Source.LineOf("metadata.name"), "metadata.name",
				"cluster %q is already defined in %s:%d", c.Object.Name, first.File, first.LineOf("metadata.name")))
			continue
		}
		if first, dup := namespaces[c.Object.Spec.HostNamespace]; dup {
			l.add(problemf(c.Source.File, c.Source.LineOf("spec.hostNamespace"), "spec.hostNamespace",
				"host namespace %q is already used by the cluster in %s:%d", c.Object.Spec.HostNamespace, first.File, first.Line))
			continue
		}
		names[c.Object.Name] = c.Source
		namespaces[c.Object.Spec.HostNamespace] = c.Source
		clusters = append(clusters, c)
	}
	l.repo.Clusters = clusters

	sort.SliceStable(l.repo.Policies, func(i, j int) bool {
		return before(l.repo.Policies[i].Source, l.repo.Policies[j].Source)
	})
	pnames := map[string]Source{}
	tenants := map[string]Policy{}
	var policies []Policy
	for _, p := range l.repo.Policies {
		if first, dup := pnames[p.Object.Name]; dup {
			l.add(problemf(p.Source.File, p.Source.LineOf("metadata.name"), "metadata.name",
				"policy %q is already defined in %s:%d", p.Object.Name, first.File, first.LineOf("metadata.name")))
			continue
		}
		if first, dup := tenants[p.Object.Spec.Tenant]; dup {
			l.add(problemf(p.Source.File, p.Source.LineOf("spec.tenant"), "spec.tenant",
				"tenant %q is already covered by policy %q (%s:%d); one policy per tenant", p.Object.Spec.Tenant, first.Object.Name, first.Source.File, first.Source.LineOf("spec.tenant")))
			continue
		}
		pnames[p.Object.Name] = p.Source
		tenants[p.Object.Spec.Tenant] = p
		policies = append(policies, p)
	}
	l.repo.Policies = policies
}

func before(a, b Source) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	return a.Line < b.Line
}

// checkTemplates requires a non-empty templates/ folder to be a kustomize
// Component, which render layers over warren's base for every cluster.
func (l *loader) checkTemplates() {
	if len(l.repo.Templates) == 0 {
		return
	}
	var name string
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, ok := l.repo.Templates[n]; ok {
			name = n
			break
		}
	}
	file := TemplatesDir + "/" + name
	if name == "" {
		l.add(problemf(TemplatesDir+"/kustomization.yaml", 0, "file", "templates/ holds files but no kustomization.yaml; it must be a kustomize Component"))
		l.repo.Templates = map[string][]byte{}
		return
	}
	docs, ps := splitDocuments(file, l.repo.Templates[name])
	if len(ps) == 0 && len(docs) != 1 {
		ps = append(ps, problemf(file, 0, "document", "must hold exactly one document"))
	}
	if len(ps) == 0 {
		if k, v := field(docs[0], "kind"); v == nil || v.Value != "Component" {
			line := docs[0].Line
			if k != nil {
				line = k.Line
			}
			ps = append(ps, problemf(file, line, "kind", "must be Component (apiVersion: kustomize.config.k8s.io/v1alpha1): warren layers it over its base for every cluster"))
		}
	}
	if len(ps) > 0 {
		l.problems = append(l.problems, ps...)
		l.repo.Templates = map[string][]byte{}
	}
}
