package policy_test

import (
	"strings"
	"testing"

	"github.com/warren-dev/warren/reconciler/policy"
	"github.com/warren-dev/warren/test/fleettest"
)

// hostsPolicy lets team-a use the host east besides the Fleet's default.
const hostsPolicy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: team-a-hosts
spec:
  tenant: team-a
  maxClusters: 5
  hosts: [east]
`

// A definition may ask for a host its policy lists or the Fleet's default;
// any other host is refused at spec.host's line, naming what is allowed;
// a definition naming no host gets the default.
func TestPolicySaysWhichHostsATenantMayUse(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": hostsPolicy,
		"clusters/a.yaml":      fleettest.Cluster("a"),
		"clusters/b.yaml":      fleettest.Cluster("b") + "  host: east\n",
		"clusters/c.yaml":      fleettest.Cluster("c") + "  host: west\n",
		"clusters/d.yaml":      fleettest.Cluster("d") + "  host: local\n",
	}
	for _, tc := range []struct {
		story       string
		defaultHost string
		hosts       map[string]string // admitted → host
		refused     map[string]string // file → message
	}{
		{
			story: "the default host is local", hosts: map[string]string{"a": "local", "b": "east", "d": "local"},
			refused: map[string]string{"clusters/c.yaml": `clusters/c.yaml:7: spec.host: policy "team-a-hosts": host "west" is not allowed (allowed: local, east)`},
		},
		{
			story: "a Fleet whose default host is west", defaultHost: "west",
			hosts:   map[string]string{"a": "west", "b": "east", "c": "west"},
			refused: map[string]string{"clusters/d.yaml": `clusters/d.yaml:7: spec.host: policy "team-a-hosts": host "local" is not allowed (allowed: west, east)`},
		},
	} {
		t.Run(tc.story, func(t *testing.T) {
			admitted, problems := admit(t, files, policy.Options{DefaultHost: tc.defaultHost})
			got := map[string]string{}
			for _, a := range admitted {
				got[a.Cluster.Name()] = a.Host
			}
			if len(got) != len(tc.hosts) {
				t.Fatalf("admitted %v, want %v", got, tc.hosts)
			}
			for name, host := range tc.hosts {
				if got[name] != host {
					t.Errorf("cluster %s on host %q, want %q", name, got[name], host)
				}
			}
			if len(problems) != len(tc.refused) {
				t.Fatalf("problems %v, want %v", problems, tc.refused)
			}
			for _, p := range problems {
				if want := tc.refused[p.File]; p.String() != want {
					t.Errorf("problem %q, want %q", p.String(), want)
				}
			}
		})
	}
}

// A running cluster whose definition now names another host (or, naming
// none, gets another default) is refused with a message saying how to
// move it; one that stays where it runs is admitted.
func TestARunningClusterCannotChangeHost(t *testing.T) {
	files := fleettest.Files{
		"policies/team-a.yaml": hostsPolicy,
		"clusters/a.yaml":      fleettest.Cluster("a") + "  host: east\n",
		"clusters/b.yaml":      fleettest.Cluster("b"),
		"clusters/c.yaml":      fleettest.Cluster("c") + "  host: east\n",
	}
	admitted, problems := admit(t, files, policy.Options{ExistingHosts: map[string]string{"a": "local", "b": "east", "c": "east"}})
	if len(admitted) != 1 || admitted[0].Cluster.Name() != "c" {
		t.Errorf("admitted %v, want only c", admitted)
	}
	if len(problems) != 2 {
		t.Fatalf("problems: %v", problems)
	}
	for i, want := range []string{
		`clusters/a.yaml:7: spec.host: cluster a runs on host "local"; moving it to "east" is refused`,
		`clusters/b.yaml:5: spec.host: cluster b runs on host "east"; moving it to "local" is refused`,
	} {
		if got := problems[i].String(); !strings.HasPrefix(got, want) || !strings.Contains(got, "remove it and add it again") {
			t.Errorf("problem %d: %q, want it to start %q and say how to move", i, got, want)
		}
	}
}
