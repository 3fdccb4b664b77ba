// Package plan compares what two versions of a fleet repository render to:
// per cluster, whether it is created, changed or deleted, and a diff of the
// rendered objects that change. It compares rendered output only; it never
// reads files, runs Git or talks to an API server.
package plan

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/render"
)

// Action is what happens to a cluster or an object.
type Action string

const (
	Create Action = "create"
	Change Action = "change"
	Delete Action = "delete"
	// Blocked is a cluster defined in the new version that is not admitted:
	// it is not applied until its problems are fixed.
	Blocked Action = "blocked"
	// Move is a running cluster whose definition names another host. The
	// reconciler refuses it (a problem says so) and keeps the cluster
	// where it runs.
	Move Action = "move"
)

// Side is one version of a repository, rendered.
type Side struct {
	// Outputs are the admitted clusters, rendered.
	Outputs []*render.Output
	// Defined names every cluster defined, admitted or not.
	Defined []string
	// Problems are load and admission problems.
	Problems []load.Problem
	// Hosts are the host each defined cluster asks for (spec.host, or
	// the default host), by name.
	Hosts map[string]string
}

// ObjectChange is one rendered object that differs.
type ObjectChange struct {
	Action    Action `json:"action"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Diff is a unified diff of the object's YAML (old, then new).
	Diff string `json:"diff"`
}

// ID is kind namespace/name.
func (o ObjectChange) ID() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Cluster is one cluster's change.
type Cluster struct {
	Name    string         `json:"name"`
	Action  Action         `json:"action"`
	Objects []ObjectChange `json:"objects,omitempty"`
	// FromHost and ToHost are the hosts of a Move.
	FromHost string `json:"fromHost,omitempty"`
	ToHost   string `json:"toHost,omitempty"`
}

// Plan is every cluster that changes, by name, and the new version's
// problems.
type Plan struct {
	Clusters  []Cluster      `json:"clusters"`
	Unchanged []string       `json:"unchanged"`
	Problems  []load.Problem `json:"problems"`
}

// Compare plans the move from old to new.
func Compare(old, new Side) (Plan, error) {
	p := Plan{Clusters: []Cluster{}, Unchanged: []string{}, Problems: new.Problems}
	if p.Problems == nil {
		p.Problems = []load.Problem{}
	}
	oldOut := byName(old.Outputs)
	newOut := byName(new.Outputs)
	defined := map[string]bool{}
	for _, n := range new.Defined {
		defined[n] = true
	}
	names := map[string]bool{}
	for n := range oldOut {
		names[n] = true
	}
	for n := range newOut {
		names[n] = true
	}
	for n := range defined {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		o, n := oldOut[name], newOut[name]
		var c Cluster
		var err error
		from, to := old.Hosts[name], new.Hosts[name]
		switch {
		case o != nil && defined[name] && from != "" && to != "" && from != to:
			c = Cluster{Name: name, Action: Move, FromHost: from, ToHost: to}
		case n == nil && defined[name]:
			c = Cluster{Name: name, Action: Blocked}
		case o == nil && n != nil:
			c, err = diffCluster(name, Create, nil, n.Objects)
		case o != nil && n == nil:
			c, err = diffCluster(name, Delete, o.Objects, nil)
		default:
			c, err = diffCluster(name, Change, o.Objects, n.Objects)
		}
		if err != nil {
			return Plan{}, err
		}
		if c.Action == Change && len(c.Objects) == 0 {
			p.Unchanged = append(p.Unchanged, name)
			continue
		}
		p.Clusters = append(p.Clusters, c)
	}
	return p, nil
}

func byName(outs []*render.Output) map[string]*render.Output {
	m := map[string]*render.Output{}
	for _, o := range outs {
		m[o.Cluster] = o
	}
	return m
}

type key struct{ apiVersion, kind, namespace, name string }

func keyOf(o *unstructured.Unstructured) key {
	return key{o.GetAPIVersion(), o.GetKind(), o.GetNamespace(), o.GetName()}
}

func diffCluster(name string, action Action, old, new []*unstructured.Unstructured) (Cluster, error) {
	c := Cluster{Name: name, Action: action}
	oldBy := map[key]*unstructured.Unstructured{}
	var order []key
	for _, o := range old {
		oldBy[keyOf(o)] = o
		order = append(order, keyOf(o))
	}
	newBy := map[key]*unstructured.Unstructured{}
	for _, o := range new {
		k := keyOf(o)
		newBy[k] = o
		if _, ok := oldBy[k]; !ok {
			order = append(order, k)
		}
	}
	for _, k := range order {
		a, b := oldBy[k], newBy[k]
		var before, after string
		var err error
		if a != nil {
			if before, err = toYAML(a); err != nil {
				return c, err
			}
		}
		if b != nil {
			if after, err = toYAML(b); err != nil {
				return c, err
			}
		}
		if before == after {
			continue
		}
		act := Change
		switch {
		case a == nil:
			act = Create
		case b == nil:
			act = Delete
		}
		diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A:        difflib.SplitLines(before),
			B:        difflib.SplitLines(after),
			FromFile: "old",
			ToFile:   "new",
			Context:  3,
		})
		if err != nil {
			return c, fmt.Errorf("diffing %s %s: %w", k.kind, k.name, err)
		}
		c.Objects = append(c.Objects, ObjectChange{Action: act, Kind: k.kind, Namespace: k.namespace, Name: k.name, Diff: diff})
	}
	return c, nil
}

func toYAML(o *unstructured.Unstructured) (string, error) {
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
	}
	return string(b), nil
}

// Text formats the plan for a terminal.
func (p Plan) Text() string {
	var b strings.Builder
	if len(p.Clusters) == 0 {
		b.WriteString("No cluster changes.\n")
	}
	for _, c := range p.Clusters {
		fmt.Fprintf(&b, "%s %s%s\n", c.Action, c.Name, moveOf(c))
		for _, o := range c.Objects {
			fmt.Fprintf(&b, "  %s %s\n", o.Action, o.ID())
			if c.Action == Change {
				for _, line := range strings.SplitAfter(o.Diff, "\n") {
					if line != "" {
						b.WriteString("    " + line)
					}
				}
			}
		}
	}
	if len(p.Unchanged) > 0 {
		fmt.Fprintf(&b, "unchanged: %s\n", strings.Join(p.Unchanged, ", "))
	}
	if len(p.Problems) > 0 {
		b.WriteString("problems:\n")
		for _, pr := range p.Problems {
			b.WriteString("  " + pr.String() + "\n")
		}
	}
	return b.String()
}

// Markdown formats the plan as a pull-request comment.
func (p Plan) Markdown() string {
	var b strings.Builder
	b.WriteString("## warren plan\n\n")
	if len(p.Clusters) == 0 {
		b.WriteString("No cluster changes.\n")
	} else {
		b.WriteString("| Cluster | Action | Objects |\n|---|---|---|\n")
		for _, c := range p.Clusters {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.Name, c.Action, summary(c))
		}
	}
	for _, c := range p.Clusters {
		if c.Action != Change {
			continue
		}
		fmt.Fprintf(&b, "\n### `%s`\n", c.Name)
		for _, o := range c.Objects {
			fmt.Fprintf(&b, "\n<details><summary>%s <code>%s</code></summary>\n\n```diff\n%s```\n</details>\n", o.Action, o.ID(), o.Diff)
		}
	}
	if len(p.Unchanged) > 0 {
		fmt.Fprintf(&b, "\nUnchanged: %s\n", "`"+strings.Join(p.Unchanged, "`, `")+"`")
	}
	if len(p.Problems) > 0 {
		b.WriteString("\n### Problems\n\n")
		for _, pr := range p.Problems {
			fmt.Fprintf(&b, "- `%s`\n", pr.String())
		}
	}
	return b.String()
}

// moveOf says where a Move goes from and to ("" for other actions).
func moveOf(c Cluster) string {
	if c.Action != Move {
		return ""
	}
	return fmt.Sprintf(" from host %s to host %s (refused: remove it and add it again to move it empty)", c.FromHost, c.ToHost)
}

func summary(c Cluster) string {
	switch c.Action {
	case Blocked:
		return "not admitted, see problems"
	case Move:
		return fmt.Sprintf("host %s → %s, refused (see problems)", c.FromHost, c.ToHost)
	}
	counts := map[Action]int{}
	for _, o := range c.Objects {
		counts[o.Action]++
	}
	var parts []string
	for _, a := range []Action{Create, Change, Delete} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d to %s", counts[a], a))
		}
	}
	return strings.Join(parts, ", ")
}
