// Package reconcilertest runs warren's reconciler (controller.Run) inside a
// test's own process, against a local plane, and stops it when the test
// ends. It is imported by tests only and must never be imported by the
// shipped binaries.
package reconcilertest

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"

	"github.com/warren-dev/warren/reconciler/controller"
)

// ServiceAccount is the user config/default gives the reconciler: tests
// that act as it (Options.As) get only the rights it documents.
const ServiceAccount = "system:serviceaccount:warren-system:warren-reconciler"

// Options say how the reconciler runs.
type Options struct {
	// As is the user the reconciler impersonates (ServiceAccount, say);
	// the plane's admin when empty.
	As string
	// Config is the reconciler's; an empty CacheDir is a directory of the
	// test's, empty MetricsAddr and HealthAddr turn those servers off, a
	// zero Concurrency is 2 and an empty Version is "test".
	Config controller.Config
	// Log receives the reconciler's log (discarded when zero).
	Log logr.Logger
}

// Run starts the reconciler against the plane that cfg reaches, until ctx
// ends or t ends; at t's end it stops the reconciler, waits for it, and
// fails t if it returned an error.
func Run(t testing.TB, ctx context.Context, cfg *rest.Config, o Options) {
	t.Helper()
	c := o.Config
	if c.CacheDir == "" {
		c.CacheDir = t.TempDir()
	}
	if c.MetricsAddr == "" {
		c.MetricsAddr = "0"
	}
	if c.HealthAddr == "" {
		c.HealthAddr = "0"
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.Version == "" {
		c.Version = "test"
	}
	as := rest.CopyConfig(cfg)
	if o.As != "" {
		as.Impersonate = rest.ImpersonationConfig{UserName: o.As}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- controller.Run(runCtx, as, c, o.Log) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
}
