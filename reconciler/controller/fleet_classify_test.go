package controller

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/load"
	"github.com/warren-dev/warren/reconciler/policy"
)

// The classify phase, cluster by cluster: what is applied, kept as last
// applied (and why), removed, and when the mass-prune guard holds removals
// back.
func TestClassifyDecidesWhatEachClusterBecomes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	admitted := func(name string, expires *time.Time) policy.Admission {
		vc := &v1alpha1.VirtualCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if expires != nil {
			vc.Spec.ExpiresAt = &metav1.Time{Time: *expires}
		}
		return policy.Admission{Cluster: load.Cluster{Object: vc, Source: load.Source{File: "clusters/" + name + ".yaml"}}}
	}
	running := func(names ...string) map[string]*v1alpha1.VirtualCluster {
		out := map[string]*v1alpha1.VirtualCluster{}
		for _, n := range names {
			vc := &v1alpha1.VirtualCluster{ObjectMeta: metav1.ObjectMeta{Name: n}}
			vc.Status.SourcePath = "clusters/" + n + ".yaml"
			out[n] = vc
		}
		return out
	}
	past, future := now.Add(-time.Minute), now.Add(time.Hour)

	for name, tc := range map[string]struct {
		spec     v1alpha1.FleetSpec
		admitted []policy.Admission
		problems []load.Problem
		existing map[string]*v1alpha1.VirtualCluster

		desired, removed []string
		kept             map[string]string // name → a fragment of why
		blocked          bool
	}{
		"admitted clusters are desired": {
			admitted: []policy.Admission{admitted("a", nil), admitted("b", &future)},
			existing: running("a"),
			desired:  []string{"a", "b"},
		},
		"an expired cluster is removed even when admitted": {
			admitted: []policy.Admission{admitted("a", nil), admitted("b", &past)},
			existing: running("a", "b"),
			desired:  []string{"a"},
			removed:  []string{"b"},
		},
		"a cluster gone from Git is removed": {
			admitted: []policy.Admission{admitted("a", nil), admitted("b", nil)},
			existing: running("a", "b", "c"),
			desired:  []string{"a", "b"},
			removed:  []string{"c"},
		},
		"a cluster whose file has a problem is kept, never pruned": {
			admitted: []policy.Admission{admitted("a", nil)},
			problems: []load.Problem{{File: "clusters/b.yaml", Field: "spec.tenant", Message: "required"}},
			existing: running("a", "b"),
			desired:  []string{"a"},
			kept:     map[string]string{"b": "spec.tenant"},
		},
		"with pruning off a cluster gone from Git is kept": {
			spec:     v1alpha1.FleetSpec{Prune: ptr.To(false)},
			admitted: []policy.Admission{admitted("a", nil)},
			existing: running("a", "b"),
			desired:  []string{"a"},
			kept:     map[string]string{"b": "pruning is off"},
		},
		"removing more than half is held back": {
			admitted: []policy.Admission{admitted("a", nil)},
			existing: running("a", "b", "c"),
			desired:  []string{"a"},
			kept:     map[string]string{"b": "removes 2 of 3 clusters (b, c)", "c": "held back"},
			blocked:  true,
		},
		"removing exactly half goes ahead": {
			admitted: []policy.Admission{admitted("a", nil), admitted("b", nil)},
			existing: running("a", "b", "c", "d"),
			desired:  []string{"a", "b"},
			removed:  []string{"c", "d"},
		},
		"removing everything is held back": {
			existing: running("a"),
			kept:     map[string]string{"a": "removes 1 of 1 clusters"},
			blocked:  true,
		},
		"allowMassPrune lets a mass removal through": {
			spec:     v1alpha1.FleetSpec{AllowMassPrune: true},
			existing: running("a", "b"),
			removed:  []string{"a", "b"},
		},
		"the guard holds back removals from Git, not expiries": {
			admitted: []policy.Admission{admitted("a", &past)},
			existing: running("a", "b", "c"),
			removed:  []string{"a"},
			kept:     map[string]string{"b": "removes 2 of 3 clusters (b, c)", "c": "held back"},
			blocked:  true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			fleet := &v1alpha1.Fleet{Spec: tc.spec}
			l := &loaded{Evaluation: policy.Evaluation{Admitted: tc.admitted, Problems: tc.problems}}
			c := classify(fleet, "main@sha1:abc", l, tc.existing, now)
			if got := sortedKeys(c.desired); !equalNames(got, tc.desired) {
				t.Errorf("desired = %v, want %v", got, tc.desired)
			}
			if !equalNames(c.removed, tc.removed) {
				t.Errorf("removed = %v, want %v", c.removed, tc.removed)
			}
			if got, want := sortedKeys(c.kept), sortedKeys(tc.kept); !equalNames(got, want) {
				t.Errorf("kept = %v, want %v", c.kept, want)
			}
			for n, why := range tc.kept {
				if !strings.Contains(c.kept[n], why) {
					t.Errorf("%s is kept because %q, want it to say %q", n, c.kept[n], why)
				}
			}
			if (c.pruneBlocked != "") != tc.blocked {
				t.Errorf("prune blocked = %q, want blocked %v", c.pruneBlocked, tc.blocked)
			}
			if tc.blocked && !strings.Contains(c.pruneBlocked, "spec.allowMassPrune") {
				t.Errorf("the guard does not say how to let the removal through: %q", c.pruneBlocked)
			}
		})
	}
}

func equalNames(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// Up to ten clusters applied in one reconcile get an event each; a cold
// start of thousands gets one that counts them, so the event queue is not
// flooded and nothing else's events are dropped.
func TestAppliedEventsCountManyClusters(t *testing.T) {
	few := appliedEvents([]string{"alpha", "beta"}, "main@sha1:abc")
	if want := []string{"cluster alpha applied from main@sha1:abc", "cluster beta applied from main@sha1:abc"}; !slices.Equal(few, want) {
		t.Errorf("two clusters: %q, want %q", few, want)
	}
	var names []string
	for i := range 5000 {
		names = append(names, fmt.Sprintf("bench-%04d", i))
	}
	many := appliedEvents(names, "main@sha1:abc")
	want := "5000 clusters applied from main@sha1:abc: bench-0000, bench-0001, bench-0002, bench-0003, bench-0004, bench-0005, bench-0006, bench-0007, bench-0008, bench-0009 and 4990 more"
	if len(many) != 1 || many[0] != want {
		t.Errorf("5,000 clusters: %q, want [%q]", many, want)
	}
}
