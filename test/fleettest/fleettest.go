// Package fleettest writes small fleet repositories for tests: a clean one,
// and one per kind of bad input the repository contract promises to reject.
// It only writes files into directories tests give it.
package fleettest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Policy is a TenantPolicy that admits the Cluster documents below.
const Policy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a
spec:
  tenant: team-a
  maxClusters: 5
`

// Cluster returns a clean VirtualCluster definition named name.
func Cluster(name string) string {
	return fmt.Sprintf(`apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: %s
spec:
  tenant: team-a
`, name)
}

// Files is a repository: slash paths to contents. A value starting with
// "symlink:" makes a symbolic link to the rest of the value.
type Files map[string]string

// Write creates the files under dir.
func Write(t testing.TB, dir string, files Files) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Bad is one bad input: a repository holding it and what warren must say.
type Bad struct {
	Name  string
	Files Files
	// File, Line (0: no line) and Field of the problem warren must report.
	File  string
	Line  int
	Field string
	// Says is a fragment of the message.
	Says string
	// Setup runs after the files are written, with the repository root
	// (for inputs that need more than files, like a link out of the root).
	Setup func(t testing.TB, root string)
}

// withPolicy adds a clean policy to files.
func withPolicy(files Files) Files {
	files["policies/team-a.yaml"] = Policy
	return files
}

// BadInputs lists every bad input of the repository contract, each alone in
// its own repository.
func BadInputs() []Bad {
	return []Bad{
		{
			Name: "unknown field",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: a
spec:
  tenant: team-a
  replicas: 3
`}),
			File: "clusters/a.yaml", Line: 7, Field: "spec.replicas", Says: "unknown field",
		},
		{
			Name: "wrong apiVersion",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1
kind: VirtualCluster
metadata:
  name: a
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 1, Field: "apiVersion", Says: "want warren.dev/v1alpha1",
		},
		{
			Name: "wrong kind",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: a
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 2, Field: "kind", Says: "hold VirtualCluster documents",
		},
		{
			Name:  "policy in the clusters folder",
			Files: withPolicy(Files{"clusters/a.yaml": strings.ReplaceAll(Policy, "team-a", "team-b")}),
			File:  "clusters/a.yaml", Line: 2, Field: "kind", Says: `is "TenantPolicy"`,
		},
		{
			Name: "document that is not a mapping",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + `---
- just
- a list
`}),
			File: "clusters/a.yaml", Line: 8, Field: "document", Says: "must be a mapping",
		},
		{
			Name: "not YAML",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: [a
`}),
			File: "clusters/a.yaml", Field: "document", Says: "not valid YAML",
		},
		{
			Name: "missing name",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  labels: {team: a}
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 3, Field: "metadata.name", Says: "required",
		},
		{
			Name:  "invalid name",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("Team_A")}),
			File:  "clusters/a.yaml", Line: 4, Field: "metadata.name", Says: "not valid",
		},
		{
			Name:  "name too long for derived host names",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a" + strings.Repeat("b", 52))}),
			File:  "clusters/a.yaml", Line: 4, Field: "metadata.name", Says: "over the limit of 52",
		},
		{
			Name: "two definitions with one name",
			Files: withPolicy(Files{
				"clusters/a.yaml":      Cluster("shared"),
				"clusters/team/b.yaml": "# the same cluster again\n" + Cluster("shared"),
			}),
			File: "clusters/team/b.yaml", Line: 5, Field: "metadata.name", Says: "already defined in clusters/a.yaml:4",
		},
		{
			Name:  "file over 1 MiB",
			Files: withPolicy(Files{"clusters/big.yaml": Cluster("big") + "# " + strings.Repeat("x", 1<<20) + "\n"}),
			File:  "clusters/big.yaml", Field: "size", Says: "1 MiB",
		},
		{
			Name:  "symlink leading outside the repository",
			Files: withPolicy(Files{"clusters/a.yaml": "symlink:../../outside.yaml"}),
			Setup: func(t testing.TB, root string) {
				// The target exists and is a valid definition: only where it
				// lives is wrong.
				outside := filepath.Join(root, "..", "outside.yaml")
				if err := os.WriteFile(outside, []byte(Cluster("outside")), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			File: "clusters/a.yaml", Field: "symlink", Says: "outside the repository root",
		},
		{
			Name: "wrong type for a field",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + `  paused: "yes"
`}),
			File: "clusters/a.yaml", Line: 7, Field: "spec.paused", Says: "must be true or false",
		},
		{
			Name:  "policy without maxClusters",
			Files: Files{"policies/p.yaml": strings.Replace(Policy, "  maxClusters: 5\n", "", 1)},
			File:  "policies/p.yaml", Line: 5, Field: "spec.maxClusters", Says: "required",
		},
	}
}

// WriteBad writes b's repository into a fresh directory below parent (so
// that a link can point outside it) and returns its root.
func WriteBad(t testing.TB, b Bad) string {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "repo")
	Write(t, root, b.Files)
	if b.Setup != nil {
		b.Setup(t, root)
	}
	return root
}

// Prefix is what the problem's line starts with: "path:line: field: ".
func (b Bad) Prefix() string {
	var buf bytes.Buffer
	buf.WriteString(b.File)
	if b.Line > 0 {
		fmt.Fprintf(&buf, ":%d", b.Line)
	}
	fmt.Fprintf(&buf, ": %s: ", b.Field)
	return buf.String()
}
