package main

import (
	"github.com/spf13/cobra"

	"github.com/warren-dev/warren/internal/demo"
)

func demoCommand() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run warren on a local host plane with the bundled example fleet",
		Long: `demo starts a local host control plane (pods are simulated by kwok fake nodes:
there is no container runtime) with the real sealed-secrets controller on it,
pushes the bundled example fleet to a local Git repository, runs the reconciler
against it and shows each cluster admitted, applied and Ready. It shows warren's
commit of each cluster's kubeconfig back to the repository, sealed, and one of
them unsealed on the host into a Secret (key names and sizes only; no
credential is ever printed). Then it pushes the removal of one cluster and
shows it pruned and its kubeconfig removed from Git by warren.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			return demo.Run(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Once, "once", false, "exit after the prune and the kubeconfig's removal have been shown (0 on success)")
	cmd.Flags().IntVar(&o.Nodes, "nodes", 2, "kwok fake nodes on the host plane")
	return cmd
}
