package load_test

import (
	"testing"
	"testing/fstest"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/test/fleettest"
)

// Whatever a definition file holds, loading reports problems; it never
// panics or hangs.
func FuzzLoadDefinition(f *testing.F) {
	f.Add(fleettest.Cluster("a"))
	f.Add(fleettest.Policy)
	f.Add("a: &x [*x]\n")
	f.Add("- 1\n---\n{}\n")
	f.Add(fleettest.Cluster("a") + "  access:\n  - clusterRole: view\n    subjects: [{kind: Group, name: g}]\n")
	f.Fuzz(func(t *testing.T, content string) {
		fsys := fstest.MapFS{
			"policies/p.yaml": {Data: []byte(content)},
			"clusters/a.yaml": {Data: []byte(content)},
		}
		repo, problems, err := load.FS(fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			if p.File == "" || p.Field == "" || p.Message == "" {
				t.Fatalf("problem without file, field or message: %+v", p)
			}
		}
		for _, c := range repo.Clusters {
			if c.Object.Name == "" || c.Object.Spec.Tenant == "" {
				t.Fatalf("loaded an incomplete cluster: %+v", c.Object)
			}
		}
	})
}
