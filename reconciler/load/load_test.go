package load_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/test/fleettest"
)

// A platform team's example repository loads without a single problem.
func TestExampleFleetLoadsClean(t *testing.T) {
	repo, problems, err := load.Dir(filepath.Join("..", "..", "examples", "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
	if got := len(repo.Clusters); got != 4 {
		t.Errorf("clusters: got %d, want 4", got)
	}
	if got := len(repo.Policies); got != 3 {
		t.Errorf("policies: got %d, want 3", got)
	}
	for _, c := range repo.Clusters {
		if c.Object.Spec.Distro == "" || c.Object.Spec.HostNamespace != "vc-"+c.Name() {
			t.Errorf("cluster %s was not defaulted: %+v", c.Name(), c.Object.Spec)
		}
	}
}

// Each bad input, alone in its own repository, is reported with its file,
// line (where there is one), field and reason, and the bad document is not
// loaded.
func TestEveryBadInputIsReportedWithFileLineAndField(t *testing.T) {
	for _, b := range fleettest.BadInputs() {
		t.Run(b.Name, func(t *testing.T) {
			root := fleettest.WriteBad(t, b)
			_, problems, err := load.Dir(root)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range problems {
				if p.File == b.File && p.Field == b.Field && (b.Line == 0 || p.Line == b.Line) && strings.Contains(p.Message, b.Says) {
					return
				}
			}
			t.Fatalf("want a problem %s...%s; got:\n%s", b.Prefix(), b.Says, load.Problems(problems).Error())
		})
	}
}

// One bad file never hides the problems of others: a repository holding all
// the bad inputs at once reports every one of them.
func TestAllProblemsAreReportedTogether(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	files := fleettest.Files{"policies/team-a.yaml": fleettest.Policy}
	var want []fleettest.Bad
	for i, b := range fleettest.BadInputs() {
		if b.Setup != nil || strings.HasPrefix(b.File, "policies/") || len(b.Files) != 2 {
			continue // needs its own layout
		}
		// Move each bad file into its own folder so that the names differ.
		dir := "clusters/case" + string(rune('a'+i))
		for name, content := range b.Files {
			if strings.HasPrefix(name, "clusters/") {
				files[dir+"/"+strings.TrimPrefix(name, "clusters/")] = content
			}
		}
		b.File = dir + "/" + strings.TrimPrefix(b.File, "clusters/")
		want = append(want, b)
	}
	files["clusters/good.yaml"] = fleettest.Cluster("good")
	fleettest.Write(t, root, files)

	repo, problems, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range want {
		found := false
		for _, p := range problems {
			if p.File == b.File && p.Field == b.Field {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no problem for %s field %s in:\n%s", b.Name, b.File, b.Field, load.Problems(problems).Error())
		}
	}
	if len(want) < 8 {
		t.Fatalf("only %d cases combined", len(want))
	}
	if _, ok := repo.Cluster("good"); !ok {
		t.Error("the good definition beside the bad ones was not loaded")
	}
}

// Problems print as path:line: field: message, the format CI parses.
func TestProblemFormat(t *testing.T) {
	p := load.Problem{File: "clusters/a.yaml", Line: 7, Field: "spec.replicas", Message: "unknown field"}
	if got, want := p.String(), "clusters/a.yaml:7: spec.replicas: unknown field"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A link that stays inside the repository is followed; the definition it
// points at loads under the link's name.
func TestSymlinkInsideTheRepositoryIsFollowed(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/team-a.yaml": fleettest.Policy,
		"shared/a.yaml":        fleettest.Cluster("linked"),
		"clusters/a.yaml":      "symlink:../shared/a.yaml",
	})
	repo, problems, err := load.Dir(root)
	if err != nil || len(problems) > 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	c, ok := repo.Cluster("linked")
	if !ok || c.Source.File != "clusters/a.yaml" {
		t.Fatalf("linked cluster not loaded from clusters/a.yaml: %+v", repo.Clusters)
	}
}

// The same checks hold for a tree that is not a directory on disk (a Git
// revision read into memory), including links out of the root.
func TestInMemoryTreeWithEscapingLink(t *testing.T) {
	fsys := fstest.MapFS{
		"policies/p.yaml": {Data: []byte(fleettest.Policy)},
		"clusters/a.yaml": {Data: []byte(fleettest.Cluster("a"))},
		"clusters/b.yaml": {Mode: os.ModeSymlink, Data: []byte("../../etc/passwd")},
	}
	repo, problems, err := load.FS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].File != "clusters/b.yaml" || problems[0].Field != "symlink" {
		t.Fatalf("problems: %v", problems)
	}
	if _, ok := repo.Cluster("a"); !ok {
		t.Error("cluster a not loaded")
	}
}

// Admission can point at the exact line of any field of a definition.
func TestSourceKnowsFieldLines(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy,
		"clusters/a.yaml": fleettest.Cluster("a") + `  resources:
    cpu: "2"
  access:
  - clusterRole: view
    subjects:
    - kind: Group
      name: everyone
`,
	})
	repo, problems, err := load.Dir(root)
	if err != nil || len(problems) > 0 {
		t.Fatalf("err %v, problems %v", err, problems)
	}
	src := repo.Clusters[0].Source
	for field, line := range map[string]int{
		"metadata.name":                   4,
		"spec.resources.cpu":              8,
		"spec.resources.memory":           7, // absent: its parent's line
		"spec.access[0].clusterRole":      10,
		"spec.access[0].subjects[0].name": 13,
	} {
		if got := src.LineOf(field); got != line {
			t.Errorf("%s: line %d, want %d", field, got, line)
		}
	}
}

// Status belongs to the reconciler: a definition may not set it.
func TestDefinitionsCannotSetStatus(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy,
		"clusters/a.yaml": fleettest.Cluster("a") + "status:\n  endpoint: https://evil\n",
	})
	_, problems, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Field != "status" || problems[0].Line != 7 {
		t.Fatalf("problems: %v", problems)
	}
}

// Timestamps and quantities may be written the way YAML users write them.
func TestTimestampsAndQuantities(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{
		"policies/p.yaml": fleettest.Policy,
		"clusters/a.yaml": fleettest.Cluster("a") + "  expiresAt: 2026-12-24T00:00:00Z\n  resources:\n    cpu: 1.5\n    pods: 10\n",
		"clusters/b.yaml": fleettest.Cluster("b") + "  expiresAt: next tuesday\n  resources:\n    memory: lots\n",
	})
	repo, problems, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := repo.Cluster("a")
	if !ok || a.Object.Spec.ExpiresAt == nil || a.Object.Spec.ExpiresAt.Year() != 2026 || a.Object.Spec.Resources.CPU.String() != "1500m" {
		t.Fatalf("cluster a: %+v", a.Object)
	}
	fields := map[string]bool{}
	for _, p := range problems {
		fields[p.File+" "+p.Field] = true
	}
	if len(problems) != 2 || !fields["clusters/b.yaml spec.expiresAt"] || !fields["clusters/b.yaml spec.resources.memory"] {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
}

// YAML aliases that multiply into millions of values are refused, quickly.
func TestAliasBombIsRefused(t *testing.T) {
	many := func(alias string) string {
		return "[" + strings.TrimSuffix(strings.Repeat("*"+alias+", ", 400), ", ") + "]"
	}
	doc := fleettest.Cluster("a") + `  x:
    s: &s {kind: Group, name: g}
    subjects: &subjects ` + many("s") + `
    g: &g {clusterRole: view, subjects: *subjects}
  access: ` + many("g") + "\n"
	root := t.TempDir()
	fleettest.Write(t, root, fleettest.Files{"clusters/a.yaml": doc})
	_, problems, err := load.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range problems {
		if p.Field == "document" && strings.Contains(p.Message, "aliases are expanded") {
			found = true
		}
	}
	if !found {
		t.Fatalf("problems:\n%s", load.Problems(problems).Error())
	}
}
