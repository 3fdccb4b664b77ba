package localkube

import (
	"context"
	"testing"
	"time"

	"github.com/warren-dev/warren/internal/localplane"
)

// ForTest starts a plane for t and stops it when t ends; it fails t if the
// plane does not come up.
func ForTest(t testing.TB, o Options) *Plane {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := localplane.Start(ctx, o)
	if err != nil {
		t.Fatalf("starting a local control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// A process of the plane that died (kwok, say) explains a
			// test that waited on it in vain.
			for _, why := range p.Exited() {
				t.Logf("the local control plane's %s", why)
			}
		}
		if err := p.Stop(); err != nil {
			t.Errorf("stopping the local control plane: %v", err)
		}
	})
	return p
}
