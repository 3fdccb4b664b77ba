// Package fleettest writes small fleet repositories for tests: a clean one,
// and one per kind of bad input the repository contract promises to reject.
// It only writes files into directories tests give it.
package fleettest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Policy is a TenantPolicy that admits the Cluster documents below.
const Policy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a
spec:
  tenant: team-a
  maxClusters: 5
`

// Cluster returns a clean VirtualCluster definition named name.
func Cluster(name string) string {
	return fmt.Sprintf(`apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: %s
spec:
  tenant: team-a
`, name)
}

// KubeconfigPolicy lets team-a (the Group team-a) ask for up to three
// clusters whose kubeconfigs warren publishes into the host namespace
// team-a, with `view` granted inside them.
var KubeconfigPolicy = KubeconfigPolicyFor(3, []string{"view"})

// KubeconfigPolicyFor is KubeconfigPolicy admitting maxClusters clusters
// that may grant the cluster roles roles and, when distros are given, run
// only those distros.
func KubeconfigPolicyFor(maxClusters int, roles []string, distros ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a
spec:
  tenant: team-a
  subjects:
  - kind: Group
    name: team-a
  maxClusters: %d
`, maxClusters)
	if len(distros) > 0 {
		b.WriteString("  distros:\n")
		for _, d := range distros {
			b.WriteString("  - name: " + d + "\n")
		}
	}
	fmt.Fprintf(&b, "  grants:\n  - clusterRoles: [%s]\n  kubeconfigNamespaces: [team-a]\n", strings.Join(roles, ", "))
	return b.String()
}

// KubeconfigCluster is a cluster of KubeconfigPolicy: `view` for the group
// team-a, its kubeconfig unsealed as Secret team-a/<name>-kubeconfig.
func KubeconfigCluster(name string) string { return KubeconfigClusterFor(name, []string{"view"}) }

// KubeconfigClusterFor is KubeconfigCluster granting the group team-a each
// of roles, with spec lines (such as "distro: k8s") after its tenant.
func KubeconfigClusterFor(name string, roles []string, spec ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: warren.dev/v1alpha1\nkind: VirtualCluster\nmetadata:\n  name: %s\nspec:\n  tenant: team-a\n", name)
	for _, line := range spec {
		b.WriteString("  " + line + "\n")
	}
	b.WriteString("  access:\n")
	for _, role := range roles {
		fmt.Fprintf(&b, "  - clusterRole: %s\n    subjects:\n    - kind: Group\n      name: team-a\n", role)
	}
	fmt.Fprintf(&b, "  kubeconfig:\n    namespace: team-a\n    name: %s-kubeconfig\n", name)
	return b.String()
}

// Files is a repository: slash paths to contents. A value starting with
// "symlink:" makes a symbolic link to the rest of the value.
type Files map[string]string

// Write creates the files under dir.
func Write(t testing.TB, dir string, files Files) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Bad is one bad input: a repository holding it and what warren must say.
type Bad struct {
	Name  string
	Files Files
	// File, Line (0: no line) and Field of the problem warren must report.
	File  string
	Line  int
	Field string
	// Says is a fragment of the message.
	Says string
	// Setup runs after the files are written, with the repository root
	// (for inputs that need more than files, like a link out of the root).
	Setup func(t testing.TB, root string)
}

// withPolicy adds a clean policy to files.
func withPolicy(files Files) Files {
	files["policies/team-a.yaml"] = Policy
	return files
}

// BadInputs lists every bad input of the repository contract, each alone in
// its own repository.
func BadInputs() []Bad {
	return slices.Concat(documentBadInputs(), nameBadInputs(), fileBadInputs(), hostBadInputs())
}

// documentBadInputs are documents that are not a definition warren reads.
func documentBadInputs() []Bad {
	return []Bad{
		{
			Name: "unknown field",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: a
spec:
  tenant: team-a
  replicas: 3
`}),
			File: "clusters/a.yaml", Line: 7, Field: "spec.replicas", Says: "unknown field",
		},
		{
			Name: "wrong apiVersion",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1
kind: VirtualCluster
metadata:
  name: a
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 1, Field: "apiVersion", Says: "want warren.dev/v1alpha1",
		},
		{
			Name: "wrong kind",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: a
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 2, Field: "kind", Says: "hold VirtualCluster documents",
		},
		{
			Name:  "policy in the clusters folder",
			Files: withPolicy(Files{"clusters/a.yaml": strings.ReplaceAll(Policy, "team-a", "team-b")}),
			File:  "clusters/a.yaml", Line: 2, Field: "kind", Says: `is "TenantPolicy"`,
		},
		{
			Name: "document that is not a mapping",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + `---
- just
- a list
`}),
			File: "clusters/a.yaml", Line: 8, Field: "document", Says: "must be a mapping",
		},
		{
			Name: "not YAML",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  name: [a
`}),
			File: "clusters/a.yaml", Field: "document", Says: "not valid YAML",
		},
	}
}

// nameBadInputs are definitions whose name is missing, invalid or taken.
func nameBadInputs() []Bad {
	return []Bad{
		{
			Name: "missing name",
			Files: withPolicy(Files{"clusters/a.yaml": `apiVersion: warren.dev/v1alpha1
kind: VirtualCluster
metadata:
  labels: {team: a}
spec:
  tenant: team-a
`}),
			File: "clusters/a.yaml", Line: 3, Field: "metadata.name", Says: "required",
		},
		{
			Name:  "invalid name",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("Team_A")}),
			File:  "clusters/a.yaml", Line: 4, Field: "metadata.name", Says: "not valid",
		},
		{
			Name:  "name too long for derived host names",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a" + strings.Repeat("b", 52))}),
			File:  "clusters/a.yaml", Line: 4, Field: "metadata.name", Says: "over the limit of 52",
		},
		{
			Name: "two definitions with one name",
			Files: withPolicy(Files{
				"clusters/a.yaml":      Cluster("shared"),
				"clusters/team/b.yaml": "# the same cluster again\n" + Cluster("shared"),
			}),
			File: "clusters/team/b.yaml", Line: 5, Field: "metadata.name", Says: "already defined in clusters/a.yaml:4",
		},
	}
}

// fileBadInputs are files too large, linked from outside, or with a field
// of the wrong type or missing.
func fileBadInputs() []Bad {
	return []Bad{
		{
			Name:  "file over 1 MiB",
			Files: withPolicy(Files{"clusters/big.yaml": Cluster("big") + "# " + strings.Repeat("x", 1<<20) + "\n"}),
			File:  "clusters/big.yaml", Field: "size", Says: "1 MiB",
		},
		{
			Name:  "symlink leading outside the repository",
			Files: withPolicy(Files{"clusters/a.yaml": "symlink:../../outside.yaml"}),
			Setup: func(t testing.TB, root string) {
				// The target exists and is a valid definition: only where it
				// lives is wrong.
				outside := filepath.Join(root, "..", "outside.yaml")
				if err := os.WriteFile(outside, []byte(Cluster("outside")), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			File: "clusters/a.yaml", Field: "symlink", Says: "outside the repository root",
		},
		{
			Name: "wrong type for a field",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + `  paused: "yes"
`}),
			File: "clusters/a.yaml", Line: 7, Field: "spec.paused", Says: "must be true or false",
		},
		{
			Name:  "policy without maxClusters",
			Files: Files{"policies/p.yaml": strings.Replace(Policy, "  maxClusters: 5\n", "", 1)},
			File:  "policies/p.yaml", Line: 5, Field: "spec.maxClusters", Says: "required",
		},
	}
}

// hostBadInputs are the bad inputs about what a cluster may use of the
// host: reserved host namespaces and workloads values no policy may allow.
func hostBadInputs() []Bad {
	return []Bad{
		{
			Name:  "reserved host namespace kube-system",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + "  hostNamespace: kube-system\n"}),
			File:  "clusters/a.yaml", Line: 7, Field: "spec.hostNamespace", Says: `"kube-system" is reserved`,
		},
		{
			Name:  "reserved host namespace default",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + "  hostNamespace: default\n"}),
			File:  "clusters/a.yaml", Line: 7, Field: "spec.hostNamespace", Says: `"default" is reserved`,
		},
		{
			Name:  "warren's own namespace as a host namespace",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + "  hostNamespace: warren-system\n"}),
			File:  "clusters/a.yaml", Line: 7, Field: "spec.hostNamespace", Says: `"warren-system" is reserved`,
		},
		{
			Name:  "another cluster's default host namespace",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + "  hostNamespace: vc-b\n"}),
			File:  "clusters/a.yaml", Line: 7, Field: "spec.hostNamespace", Says: `"vc-b" is the default namespace of a cluster named "b"`,
		},
		{
			Name:  "endpoint range over loopback",
			Files: withPolicy(Files{"clusters/a.yaml": Cluster("a") + "  workloads:\n    endpointCIDRs: [127.0.0.0/16]\n"}),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.endpointCIDRs[0]", Says: "overlaps 127.0.0.0/8",
		},
		{
			Name:  "policy allowing a reserved host namespace",
			Files: Files{"policies/p.yaml": Policy + "  hostNamespaces: [team-a-*, kube-system]\n"},
			File:  "policies/p.yaml", Line: 8, Field: "spec.hostNamespaces[1]", Says: `"kube-system" is reserved`,
		},
		{
			Name:  "policy toleration of every taint",
			Files: Files{"policies/p.yaml": Policy + "  workloads:\n    tolerations:\n    - operator: Exists\n"},
			File:  "policies/p.yaml", Line: 10, Field: "spec.workloads.tolerations[0].key", Says: "tolerates every taint",
		},
		{
			Name:  "policy ingress host matching every host",
			Files: Files{"policies/p.yaml": Policy + "  workloads:\n    ingressHosts: [\"*\"]\n"},
			File:  "policies/p.yaml", Line: 9, Field: "spec.workloads.ingressHosts[0]", Says: "any host name",
		},
		{
			Name:  "policy letting warren's own annotations through",
			Files: Files{"policies/p.yaml": Policy + "  workloads:\n    podAnnotations: [warren.dev/*]\n"},
			File:  "policies/p.yaml", Line: 9, Field: "spec.workloads.podAnnotations[0]", Says: "warren's own",
		},
		{
			Name:  "policy endpoint range of everything",
			Files: Files{"policies/p.yaml": Policy + "  workloads:\n    endpointCIDRs: [0.0.0.0/0]\n"},
			File:  "policies/p.yaml", Line: 9, Field: "spec.workloads.endpointCIDRs[0]", Says: "overlaps 0.0.0.0/8",
		},
	}
}

// WriteBad writes b's repository into a fresh directory below parent (so
// that a link can point outside it) and returns its root.
func WriteBad(t testing.TB, b Bad) string {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "repo")
	Write(t, root, b.Files)
	if b.Setup != nil {
		b.Setup(t, root)
	}
	return root
}

// Prefix is what the problem's line starts with: "path:line: field: ".
func (b Bad) Prefix() string {
	var buf bytes.Buffer
	buf.WriteString(b.File)
	if b.Line > 0 {
		fmt.Fprintf(&buf, ":%d", b.Line)
	}
	fmt.Fprintf(&buf, ": %s: ", b.Field)
	return buf.String()
}

// IsolationPolicy is a TenantPolicy that says what team-a's workloads may
// use of the host; PolicyViolations ask for more.
const IsolationPolicy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a
spec:
  tenant: team-a
  maxClusters: 5
  hostNamespaces: [team-a-*]
  workloads:
    storageClasses: [standard]
    nodeSelector:
      pool: tenants
    tolerations:
    - key: dedicated
      value: tenants
      effect: NoSchedule
    ingressHosts: ["*.team-a.example.com"]
    ingressClasses: [public]
    ingressAnnotations: [nginx.ingress.kubernetes.io/rewrite-target]
    podAnnotations: [prometheus.io/*]
    endpointCIDRs: [10.20.0.0/16]
`

// workloads is a clean definition named a asking for the given
// spec.workloads fields (lines from 8 on).
func workloads(fields string) Files {
	return Files{
		"policies/team-a.yaml": IsolationPolicy,
		"clusters/a.yaml":      Cluster("a") + "  workloads:\n" + fields,
	}
}

// PolicyViolations lists definitions that load cleanly but ask for more of
// the host than IsolationPolicy allows, each alone in its own repository,
// with the problem admission must report.
func PolicyViolations() []Bad {
	return []Bad{
		{
			Name:  "host cluster the policy does not allow",
			Files: Files{"policies/team-a.yaml": Policy, "clusters/a.yaml": Cluster("a") + "  host: east\n"},
			File:  "clusters/a.yaml", Line: 7, Field: "spec.host", Says: `host "east" is not allowed (allowed: local)`,
		},
		{
			Name:  "host namespace the policy does not allow",
			Files: Files{"policies/team-a.yaml": IsolationPolicy, "clusters/a.yaml": Cluster("a") + "  hostNamespace: team-b-apps\n"},
			File:  "clusters/a.yaml", Line: 7, Field: "spec.hostNamespace", Says: `host namespace "team-b-apps" is not allowed (allowed: vc-a, team-a-*)`,
		},
		{
			Name:  "storage class of another team",
			Files: workloads("    storageClasses: [nfs-team-b]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.storageClasses[0]", Says: `storage class "nfs-team-b" is not allowed (allowed: standard)`,
		},
		{
			Name:  "static binding",
			Files: workloads("    staticBinding: true\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.staticBinding", Says: "static binding (storageClassName \"\" or volumeName) is not allowed",
		},
		{
			Name:  "node selector aimed at one node",
			Files: workloads("    nodeSelector:\n      kubernetes.io/hostname: server-0\n"),
			File:  "clusters/a.yaml", Line: 9, Field: "spec.workloads.nodeSelector.kubernetes.io/hostname", Says: `node selector key "kubernetes.io/hostname" is not allowed (the policy's: pool=tenants)`,
		},
		{
			Name:  "node selector leaving the policy's pool",
			Files: workloads("    nodeSelector:\n      pool: system\n"),
			File:  "clusters/a.yaml", Line: 9, Field: "spec.workloads.nodeSelector.pool", Says: "node selector pool=system is not allowed (the policy's: pool=tenants)",
		},
		{
			Name:  "toleration of control-plane nodes",
			Files: workloads("    tolerations:\n    - key: node-role.kubernetes.io/control-plane\n      operator: Exists\n"),
			File:  "clusters/a.yaml", Line: 9, Field: "spec.workloads.tolerations[0]", Says: "toleration node-role.kubernetes.io/control-plane Exists is not allowed (allowed: dedicated=tenants:NoSchedule)",
		},
		{
			Name:  "ingress host of another team",
			Files: workloads("    ingressHosts: [shop.team-b.example.com]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.ingressHosts[0]", Says: `ingress host "shop.team-b.example.com" is not allowed (allowed: *.team-a.example.com)`,
		},
		{
			Name:  "ingress host pattern wider than the policy's",
			Files: workloads("    ingressHosts: [\"*.example.com\"]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.ingressHosts[0]", Says: `ingress host "*.example.com" is not allowed`,
		},
		{
			Name:  "internal ingress class",
			Files: workloads("    ingressClasses: [internal]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.ingressClasses[0]", Says: `ingress class "internal" is not allowed (allowed: public)`,
		},
		{
			Name:  "Ingress annotation naming another namespace's Secret",
			Files: workloads("    ingressAnnotations: [nginx.ingress.kubernetes.io/auth-tls-secret]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.ingressAnnotations[0]", Says: `Ingress annotation "nginx.ingress.kubernetes.io/auth-tls-secret" is not allowed`,
		},
		{
			Name:  "pod annotation host networking acts on",
			Files: workloads("    podAnnotations: [k8s.v1.cni.cncf.io/networks]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.podAnnotations[0]", Says: `pod annotation "k8s.v1.cni.cncf.io/networks" is not allowed (allowed: prometheus.io/*)`,
		},
		{
			Name:  "endpoint range wider than the policy's",
			Files: workloads("    endpointCIDRs: [10.0.0.0/8]\n"),
			File:  "clusters/a.yaml", Line: 8, Field: "spec.workloads.endpointCIDRs[0]", Says: "endpoint range 10.0.0.0/8 is not inside an allowed range (allowed: 10.20.0.0/16)",
		},
	}
}
