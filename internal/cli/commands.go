package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/warren-dev/warren/internal/gitfs"
	"github.com/warren-dev/warren/internal/plan"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/reconciler/render"
)

// checked is a repository loaded and admitted, as the Fleet controller
// judges it.
type checked = policy.Evaluation

// check evaluates repo as a Fleet whose default host is defaultHost, with
// existing (cluster → host) running.
func check(repo *load.Repository, loadProblems []load.Problem, defaultHost string, existing map[string]string) checked {
	names := make([]string, 0, len(existing))
	for n := range existing {
		names = append(names, n)
	}
	return policy.Evaluate(repo, loadProblems, policy.Options{Existing: names, DefaultHost: defaultHost, ExistingHosts: existing})
}

func checkDir(dir, defaultHost string) (checked, error) {
	repo, problems, err := load.Dir(dir)
	if err != nil {
		return checked{}, err
	}
	return check(repo, problems, defaultHost, nil), nil
}

// defaultHostFlag is --default-host, the Fleet's spec.defaultHost.
func defaultHostFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "default-host", v1alpha1.LocalHost, "the Fleet's spec.defaultHost: the host of definitions that name none")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func outputFlag(cmd *cobra.Command, p *string, allowed ...string) {
	cmd.Flags().StringVarP(p, "output", "o", allowed[0], fmt.Sprintf("output format: %v", allowed))
}

func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("--output %q: want one of %v", got, allowed)
}

func validateCommand() *cobra.Command {
	var output, defaultHost string
	cmd := &cobra.Command{
		Use:   "validate DIR",
		Short: "Load and admit every definition and policy; one line per problem",
		Long: `validate loads a fleet repository's clusters/ and policies/ strictly and
admits every VirtualCluster against its tenant's TenantPolicy. It prints one
line per problem, path:line: field: message, and exits 1 when there is any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			c, err := checkDir(args[0], defaultHost)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				names := []string{}
				for _, a := range c.Admitted {
					names = append(names, a.Cluster.Name())
				}
				problems := c.Problems
				if problems == nil {
					problems = []load.Problem{}
				}
				if err := writeJSON(out, map[string]any{"admitted": names, "problems": problems}); err != nil {
					return err
				}
			} else {
				for _, p := range c.Problems {
					fmt.Fprintln(out, p.String())
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%d clusters admitted, %d policies, %d problems\n",
					len(c.Admitted), len(c.Repo.Policies), len(c.Problems))
			}
			if len(c.Problems) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	outputFlag(cmd, &output, "text", "json")
	defaultHostFlag(cmd, &defaultHost)
	return cmd
}

func renderCommand() *cobra.Command {
	var cluster, defaultHost string
	var o render.Options
	cmd := &cobra.Command{
		Use:   "render DIR",
		Short: "Print the YAML stream warren would apply for the admitted clusters",
		Long: `render prints the host objects of every admitted cluster (or of one, with
--cluster) as one YAML stream. Problems go to stderr and make it exit 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := checkDir(args[0], defaultHost)
			if err != nil {
				return err
			}
			for _, p := range c.Problems {
				fmt.Fprintln(cmd.ErrOrStderr(), p.String())
			}
			admitted := c.Admitted
			if cluster != "" {
				admitted = nil
				for _, a := range c.Admitted {
					if a.Cluster.Name() == cluster {
						admitted = append(admitted, a)
					}
				}
				if len(admitted) == 0 {
					if _, defined := c.Repo.Cluster(cluster); defined {
						fmt.Fprintf(cmd.ErrOrStderr(), "cluster %q is not admitted; see the problems above\n", cluster)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "cluster %q is not defined in %s\n", cluster, args[0])
					}
					return exitError{1}
				}
			}
			outs, err := render.Fleet(c.Repo, admitted, o)
			if err != nil {
				return err
			}
			stream, err := render.Stream(outs)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(stream); err != nil {
				return err
			}
			if len(c.Problems) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "render only this cluster")
	renderFlags(cmd, &o)
	defaultHostFlag(cmd, &defaultHost)
	return cmd
}

func renderFlags(cmd *cobra.Command, o *render.Options) {
	cmd.Flags().StringVar(&o.ServiceCIDR, "service-cidr", render.DefaultServiceCIDR, "the host cluster's service CIDR")
	cmd.Flags().StringVar(&o.NodePortRange, "node-port-range", render.DefaultNodePortRange, "the host cluster's node-port range, first-last")
	cmd.Flags().StringVar(&o.SyncerImage, "syncer-image", render.DefaultSyncerImage, "the syncer image")
	cmd.Flags().StringSliceVar(&o.PodCIDRs, "pod-cidrs", nil, "the host cluster's pod address ranges, kept out of what a cluster's API admits (every private range when empty)")
}

// side renders one version of a repository, with existing (cluster →
// host: the old version's admitted clusters) running.
func side(fsys fs.FS, defaultHost string, existing map[string]string, o render.Options) (plan.Side, map[string]string, error) {
	repo, problems, err := load.FS(fsys)
	if err != nil {
		return plan.Side{}, nil, err
	}
	c := check(repo, problems, defaultHost, existing)
	outs, err := render.Fleet(c.Repo, c.Admitted, o)
	if err != nil {
		return plan.Side{}, nil, err
	}
	var defined []string
	hosts := map[string]string{}
	for _, cl := range repo.Clusters {
		defined = append(defined, cl.Name())
		hosts[cl.Name()] = cmp.Or(cl.Object.Spec.Host, defaultHost, v1alpha1.LocalHost)
	}
	admitted := map[string]string{}
	for _, a := range c.Admitted {
		admitted[a.Cluster.Name()] = a.Host
	}
	return plan.Side{Outputs: outs, Defined: defined, Problems: c.Problems, Hosts: hosts}, admitted, nil
}

// comparePlan plans the move from the repository in oldFS to the one in
// newFS, the old version's clusters running on the hosts it admits them to.
func comparePlan(oldFS, newFS fs.FS, defaultHost string, o render.Options) (plan.Plan, error) {
	oldSide, running, err := side(oldFS, defaultHost, nil, o)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("old version: %w", err)
	}
	newSide, _, err := side(newFS, defaultHost, running, o)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("new version: %w", err)
	}
	return plan.Compare(oldSide, newSide)
}

func planCommand() *cobra.Command {
	var base, output, defaultHost string
	var o render.Options
	cmd := &cobra.Command{
		Use:   "plan DIR --base REV | plan OLD_DIR NEW_DIR",
		Short: "Show which clusters a change creates, changes or deletes, with a diff",
		Long: `plan renders two versions of a fleet repository and reports, per cluster,
create / change / delete with a diff of the changed objects, and the new
version's problems. The old version is either a Git revision of the
repository holding DIR (--base, read with go-git) or another directory.
It exits 1 when the new version has problems.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "markdown", "json"); err != nil {
				return err
			}
			var oldFS, newFS fs.FS
			switch {
			case len(args) == 1 && base != "":
				f, err := gitfs.AtRevision(args[0], base)
				if err != nil {
					return err
				}
				oldFS = f
				root, closer, err := openDir(args[0])
				if err != nil {
					return err
				}
				defer closer()
				newFS = root
			case len(args) == 2 && base == "":
				oldRoot, closeOld, err := openDir(args[0])
				if err != nil {
					return err
				}
				defer closeOld()
				newRoot, closeNew, err := openDir(args[1])
				if err != nil {
					return err
				}
				defer closeNew()
				oldFS, newFS = oldRoot, newRoot
			default:
				return fmt.Errorf("give either DIR --base REV or OLD_DIR NEW_DIR")
			}
			p, err := comparePlan(oldFS, newFS, defaultHost, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				err = writeJSON(out, p)
			case "markdown":
				_, err = io.WriteString(out, p.Markdown())
			default:
				_, err = io.WriteString(out, p.Text())
			}
			if err != nil {
				return err
			}
			if len(p.Problems) > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "", "Git revision of the repository holding DIR to compare against")
	outputFlag(cmd, &output, "text", "markdown", "json")
	renderFlags(cmd, &o)
	defaultHostFlag(cmd, &defaultHost)
	return cmd
}
