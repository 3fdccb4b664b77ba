package render_test

import (
	"testing"

	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
)

// Rendering one cluster runs a full in-memory kustomize build; a fleet of a
// few hundred clusters re-renders on every Git change, so this is the cost
// to watch.
func BenchmarkRenderOneCluster(b *testing.B) {
	repo, problems, err := load.Dir(exampleFleet)
	if err != nil || len(problems) > 0 {
		b.Fatalf("err %v, problems %v", err, problems)
	}
	admitted, _ := policy.Admit(repo, policy.Options{})
	in := render.InputFor(admitted[0], repo)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := render.Cluster(in, render.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
