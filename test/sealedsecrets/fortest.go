package sealedsecrets

import (
	"context"
	"testing"
	"time"

	"github.com/warren-dev/warren/internal/sealedsecrets"
	"github.com/warren-dev/warren/test/localkube"
)

// ForTest starts a controller on plane for t and stops it when t ends; it
// fails t if the controller does not come up.
func ForTest(t testing.TB, plane *localkube.Plane, o Options) *Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sealedsecrets.Start(ctx, plane, o)
	if err != nil {
		t.Fatalf("starting the sealed-secrets controller: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the sealed-secrets controller: %v", err)
		}
	})
	return c
}
