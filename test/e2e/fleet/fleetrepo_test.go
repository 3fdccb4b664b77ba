package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/warren-dev/warren/test/gitserver"
)

// policyYAML is a TenantPolicy for tenant, admitting up to maxClusters
// clusters of at most cpu each.
func policyYAML(tenant string, maxClusters int, cpu string) string {
	return fmt.Sprintf(`apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: %s
spec:
  tenant: %s
  maxClusters: %d
  perCluster:
    cpu: "%s"
`, tenant, tenant, maxClusters, cpu)
}

// clusterYAML is a VirtualCluster definition with extra spec lines.
func clusterYAML(name, tenant, cpu string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: %s
spec:
  tenant: %s
  resources:
    cpu: "%s"
    pods: 20
`, name, tenant, cpu)
	for _, e := range extra {
		b.WriteString("  " + e + "\n")
	}
	return b.String()
}

// fleetRepo is a Git repository of one tenant's clusters.
type fleetRepo struct {
	*gitserver.Repo
	tenant string
}

// newFleetRepo makes a bare repository <root>/<name>.git whose first commit
// holds the tenant's policy and one file per cluster (clusters/<name>.yaml).
// It returns the commit.
func newFleetRepo(t testing.TB, root, name, tenant string, clusters ...string) (*fleetRepo, string) {
	t.Helper()
	r := &fleetRepo{Repo: gitserver.NewRepo(t, root, name), tenant: tenant}
	files := map[string]string{"policies/" + tenant + ".yaml": policyYAML(tenant, 20, "4")}
	for _, c := range clusters {
		files[clusterFile(c)] = clusterYAML(c, tenant, "1")
	}
	sha := r.CommitFiles(t, "clusters "+strings.Join(clusters, ", "), files)
	return r, sha
}

func clusterFile(name string) string { return "clusters/" + name + ".yaml" }
