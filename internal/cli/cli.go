// Package cli is warren's command line for fleet repositories: validate,
// render and plan, the commands a repository's pull-request CI runs. It
// wires load, policy, render and plan together and formats their results;
// it never talks to an API server and never writes to a repository.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit code; its message, if any, has been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// NewRoot returns the warren command with validate, render and plan, plus
// any extra subcommands (the reconciler adds demo).
func NewRoot(extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:           "warren",
		Short:         "Virtual Kubernetes clusters, requested by pull request",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(validateCommand(), renderCommand(), planCommand())
	root.AddCommand(extra...)
	return root
}

// Main runs the warren command line and returns the process exit code:
// 0 when all is well, 1 when the repository has problems, 2 when warren
// could not do what was asked (bad flags, unreadable directory).
func Main(args []string, stdout, stderr io.Writer, extra ...*cobra.Command) int {
	root := NewRoot(extra...)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Ctrl-C ends a long command (demo) through its context, so it can
	// clean up what it started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "warren: %v\n", err)
		return 2
	}
}
