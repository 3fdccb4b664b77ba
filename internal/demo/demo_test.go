package demo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/internal/demo"
)

// The demo is warren's main job on its embedded default: a person running
// `warren demo --once` sees every example cluster admitted, applied and
// Ready, then one removed from Git and pruned.
func TestDemoShowsClustersReadyThenOnePruned(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := demo.Run(ctx, &out, demo.Options{Once: true, Nodes: 1}); err != nil {
		t.Fatalf("demo failed: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"simulated by kwok",
		"payments-dev       Admitted",
		"payments-staging   Applied",
		"search-ci          Ready",
		"all 3 clusters admitted, applied and Ready",
		"search-ci pruned: its VirtualCluster and namespace vc-search-ci are gone",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q; it was:\n%s", want, text)
		}
	}
	after := text[strings.Index(text, "pruned"):]
	if strings.Contains(after, "search-ci   ") {
		t.Errorf("search-ci still listed after the prune:\n%s", after)
	}
}
