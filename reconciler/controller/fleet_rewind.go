package controller

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/source"
)

// ReasonRewound is the event of a revision that does not descend from the
// one last applied.
const ReasonRewound = "Rewound"

// rewoundFrom returns the revision the Fleet last applied when snap does not
// descend from it: the branch was moved back or rewritten (a force push, a
// reset). It returns "" when snap is that revision or descends from it, when
// it is of another ref, and when the cache cannot tell (a reconciler started
// on an empty cache holds no history): such a revision is reconciled as any
// other, mass-prune guard included.
func (r *FleetReconciler) rewoundFrom(fleet *v1alpha1.Fleet, snap *source.Snapshot) string {
	last := fleet.Status.LastAppliedRevision
	name, commit, ok := strings.Cut(last, "sha1:")
	if !ok || commit == snap.Commit || !strings.HasPrefix(snap.Revision, name) {
		return ""
	}
	cached, ok := r.repos.Load(types.NamespacedName{Namespace: fleet.Namespace, Name: fleet.Name})
	if !ok {
		return ""
	}
	descends, err := cached.(*cachedRepo).repo.Descends(snap.Commit, commit)
	if err != nil || descends {
		return ""
	}
	return last
}

// describeRewind says what the rewind from one revision to s's does,
// counted as `warren plan` counts: clusters to delete (held back or not),
// to create, and to keep.
func describeRewind(s *fleetScope, from string) string {
	gone := append(slices.Clone(s.removed), s.heldBack...)
	sort.Strings(gone)
	created := 0
	for name := range s.desired {
		if _, ok := s.existing[name]; !ok {
			created++
		}
	}
	deleted := fmt.Sprintf("%d cluster(s) to delete", len(gone))
	if len(gone) > 0 {
		deleted += " (" + joinLimited(gone) + ")"
	}
	return fmt.Sprintf("revision %s rewinds %s (it does not descend from it: a force push or reset): %s, %d to create, %d to keep",
		s.revision, from, deleted, created, len(s.desired)-created)
}
