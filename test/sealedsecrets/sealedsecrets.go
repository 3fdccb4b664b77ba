// Package sealedsecrets gives tests the real sealed-secrets controller on a
// local plane: ForTest starts one from internal/sealedsecrets for a test and
// stops it when the test ends. The launcher lives in internal/sealedsecrets so
// the demo in the shipped binary never links the testing package; this
// package only wraps it for tests and must never be imported by non-test code.
package sealedsecrets

import "github.com/warren-dev/warren/internal/sealedsecrets"

type (
	// Controller is a running sealed-secrets controller.
	Controller = sealedsecrets.Controller
	// Options says how the controller runs.
	Options = sealedsecrets.Options
)
