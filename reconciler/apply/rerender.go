package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// renderDrifted gives the objects of every cluster that desired names by
// digests alone, one of which is not on the host as warren last applied it
// (changed, missing, or not known to be applied in full), by rendering that
// cluster again with rerender, a few clusters at a time. A cluster that
// cannot be rendered again is recorded in res.Unrendered and left out; held
// names those clusters, whose previous entries the inventory keeps. live
// gains the objects of any kind the new renders add.
func (a *Applier) renderDrifted(ctx context.Context, res *Result, desired []desiredObject, prev map[string]Entry, live map[string]liveObject, rerender Rerender) ([]desiredObject, map[string]bool, error) {
	held := map[string]bool{}
	var drifted []string
	seen := map[string]bool{}
	for _, d := range desired {
		if d.body == nil && !seen[d.cluster] && !isUnchanged(prev, d, live[d.id]) {
			seen[d.cluster] = true
			drifted = append(drifted, d.cluster)
		}
	}
	if len(drifted) == 0 {
		return desired, held, nil
	}
	fresh := make([][]Object, len(drifted))
	errs := make([]error, len(drifted))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.opts.Concurrency)
	for i, c := range drifted {
		g.Go(func() error {
			if rerender == nil {
				errs[i] = errors.New("apply: its objects were given by their digests alone, with no way to render them again")
				return nil
			}
			fresh[i], errs[i] = rerender(gctx, c)
			return nil
		})
	}
	_ = g.Wait()
	again := map[string][]desiredObject{}
	for i, c := range drifted {
		if errs[i] == nil {
			errs[i] = notOf(c, fresh[i])
		}
		if errs[i] != nil {
			res.Unrendered = append(res.Unrendered, ClusterFailure{Cluster: c, Err: errs[i]})
			held[c] = true
			continue
		}
		for j := range fresh[i] {
			again[c] = append(again[c], desiredObject{Object: &fresh[i][j]})
		}
	}
	out, err := replaceClusters(desired, drifted, again)
	if err != nil {
		return nil, nil, err
	}
	if err := a.listNewKinds(ctx, live, desired, out); err != nil {
		return nil, nil, err
	}
	return out, held, nil
}

// notOf says which of objects, rendered again for cluster, is another
// cluster's (or no cluster's): Apply knows a cluster's objects by their
// label.
func notOf(cluster string, objects []Object) error {
	for _, o := range objects {
		if o.cluster != cluster {
			return fmt.Errorf("apply: rendered again for cluster %q, %s is labelled for %q", cluster, o.ref, o.cluster)
		}
	}
	return nil
}

// replaceClusters is desired with the objects of each of clusters replaced
// by those in again (none for a cluster not in again).
func replaceClusters(desired []desiredObject, clusters []string, again map[string][]desiredObject) ([]desiredObject, error) {
	replaced := make(map[string]bool, len(clusters))
	for _, c := range clusters {
		replaced[c] = true
	}
	out := make([]desiredObject, 0, len(desired))
	for _, d := range desired {
		if !replaced[d.cluster] {
			out = append(out, d)
		}
	}
	for _, c := range clusters {
		out = append(out, again[c]...)
	}
	return out, onceEach(out)
}

// listNewKinds adds to live the objects of the kinds in now that were not
// in before.
func (a *Applier) listNewKinds(ctx context.Context, live map[string]liveObject, before, now []desiredObject) error {
	listed := kindsOf(before)
	var missing []schema.GroupVersionKind
	for _, gvk := range kindsOf(now) {
		if !slices.Contains(listed, gvk) {
			missing = append(missing, gvk)
		}
	}
	more, err := a.listOwned(ctx, missing)
	for id, l := range more {
		live[id] = l
	}
	return err
}
