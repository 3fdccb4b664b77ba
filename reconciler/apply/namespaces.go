package apply

import (
	"context"
	"fmt"
)

// namespaceScreen keeps objects out of namespaces warren did not create for
// them. A cluster's objects go only into the namespace rendered for that
// cluster, in the same Apply, and only if that namespace is absent (warren
// creates it) or already this Fleet's for the same cluster. A namespace
// that is someone else's, or another cluster's, is a conflict, and takes
// along everything of the cluster that rendered it, cluster-wide objects
// too.
type namespaceScreen struct {
	// checked are the Namespaces looked up and found absent.
	checked map[string]bool
	// foreign maps a namespace warren may not write into to why, said of
	// the objects inside it.
	foreign map[string]string
	// blockedClusters maps a cluster whose namespace is foreign to it.
	blockedClusters map[string]string
	// clusterOf maps each rendered namespace to the cluster it is for.
	clusterOf map[string]string
	// conflicts are the Namespaces found foreign.
	conflicts []Conflict
}

func (a *Applier) screenNamespaces(ctx context.Context, desired []desiredObject, live map[string]liveObject) (*namespaceScreen, error) {
	s := &namespaceScreen{checked: map[string]bool{}, foreign: map[string]string{}, blockedClusters: map[string]string{}, clusterOf: map[string]string{}}
	for _, d := range desired {
		if !isNamespace(d.ref) {
			continue
		}
		cluster := d.cluster
		s.clusterOf[d.ref.Name] = cluster
		var conflict *Conflict
		inside := "which is not this Fleet's"
		if l, ours := live[d.id]; ours {
			if owner := l.cluster; owner != cluster {
				conflict = &Conflict{Object: d.ref, Reason: fmt.Sprintf("warren created it for cluster %q, not for %q", owner, cluster)}
				inside = fmt.Sprintf("which warren created for cluster %q", owner)
			}
		} else {
			var err error
			if conflict, err = a.foreign(ctx, d); err != nil {
				return nil, err
			}
			s.checked[d.id] = conflict == nil
		}
		if conflict != nil {
			s.foreign[d.ref.Name] = inside
			if cluster != "" {
				s.blockedClusters[cluster] = d.ref.Name
			}
			s.conflicts = append(s.conflicts, *conflict)
		}
	}
	return s, nil
}

// blocks says whether d may not be written, and the conflict to report
// for it (nil for a foreign Namespace, reported when screened).
func (s *namespaceScreen) blocks(d desiredObject) (bool, *Conflict) {
	ns, cluster := d.ref.Namespace, d.cluster
	switch {
	case isNamespace(d.ref) && s.foreign[d.ref.Name] != "":
		return true, nil
	case ns != "" && s.foreign[ns] != "":
		return true, &Conflict{Object: d.ref, Reason: "in namespace " + ns + ", " + s.foreign[ns]}
	case cluster != "" && s.blockedClusters[cluster] != "":
		return true, &Conflict{Object: d.ref, Reason: fmt.Sprintf("cluster %q's namespace %s is not warren's for it, so nothing of the cluster is written", cluster, s.blockedClusters[cluster])}
	case ns == "" || cluster == "":
		return false, nil
	}
	owner, rendered := s.clusterOf[ns]
	switch {
	case !rendered:
		return true, &Conflict{Object: d.ref, Reason: fmt.Sprintf("in namespace %s, which warren does not create for cluster %q", ns, cluster)}
	case owner != cluster:
		return true, &Conflict{Object: d.ref, Reason: fmt.Sprintf("in namespace %s, which warren creates for cluster %q, not for %q", ns, owner, cluster)}
	}
	return false, nil
}
