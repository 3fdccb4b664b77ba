package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/warren-dev/warren/internal/demo"
)

func demoCommand() *cobra.Command {
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run warren on a local host plane with the bundled example fleet",
		Long: `demo starts a local host control plane with the real sealed-secrets
controller on it, pushes the bundled example fleet to a local Git repository,
runs the reconciler against it and shows each cluster admitted, applied and
Ready. It shows warren's commit of each cluster's kubeconfig back to the
repository, sealed, and one of them unsealed on the host into a Secret (key
names and sizes only; no credential is ever printed). Then it pushes the
removal of one cluster and shows it pruned and its kubeconfig removed from Git
by warren.

As root (and unless WARREN_REAL_NODES=0), the host runs a real node (kubelet,
containerd, kube-proxy; see docs/real-nodes.md): the fleet's k8s-distro
cluster really boots, and the demo uses its unsealed kubeconfig as the tenant
would (kubectl get ns, a Deployment behind a Service reached through its
ClusterIP). No k3s images can be had here, so k3s clusters never start on a
real node. Otherwise pods are simulated by kwok fake nodes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			return demo.Run(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.Once, "once", false, "exit after the prune and the kubeconfig's removal have been shown (0 on success)")
	cmd.Flags().IntVar(&o.Nodes, "nodes", 2, "kwok fake nodes on the host plane (without real nodes)")
	cmd.Flags().IntVar(&o.RealNodes, "real-nodes", defaultRealNodes(), "real nodes on the host plane (root only; 0 for kwok's fake nodes)")
	cmd.Flags().StringVar(&o.SyncerBinary, "syncer-binary", "", "a static warren-syncer for the syncer image real nodes hold (make demo builds it)")
	return cmd
}

// defaultRealNodes is 1 as root, unless WARREN_REAL_NODES=0 says otherwise.
func defaultRealNodes() int {
	if os.Geteuid() != 0 || os.Getenv("WARREN_REAL_NODES") == "0" {
		return 0
	}
	return 1
}
