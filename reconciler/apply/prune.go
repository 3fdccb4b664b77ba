package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// PruneResult says what Prune did.
type PruneResult struct {
	// Deleted objects (or already gone).
	Deleted []ObjectRef
	// Skipped objects still exist but no longer carry this Fleet's labels,
	// so they are not warren's to delete.
	Skipped []ObjectRef
}

// Prune deletes the objects of stale (see Stale) that still carry this
// Fleet's labels, namespaced objects before their namespaces, in the
// background (their own dependants go with them through garbage
// collection). An object without the labels is left alone and reported.
func (a *Applier) Prune(ctx context.Context, stale []Entry) (*PruneResult, error) {
	res := &PruneResult{}
	if len(stale) == 0 {
		return res, nil
	}
	objs := make([]*unstructured.Unstructured, 0, len(stale))
	for _, e := range stale {
		ref, err := RefOf(e)
		if err != nil {
			return res, fmt.Errorf("apply: prune: %w", err)
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ref.GroupVersionKind())
		u.SetNamespace(ref.Namespace)
		u.SetName(ref.Name)
		objs = append(objs, u)
	}
	opts := ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		Inclusions:        a.owner.Labels(),
	}
	sort.Sort(sort.Reverse(ssa.SortableUnstructureds(objs)))
	var errs []error
	for _, obj := range objs {
		entry, err := a.manager.Delete(ctx, obj, opts)
		switch {
		case err != nil && apierrors.IsNotFound(err):
			// Gone between ssa's look-up and its delete: garbage
			// collection or its namespace's deletion took it first.
			res.Deleted = append(res.Deleted, refOf(obj))
		case err != nil:
			errs = append(errs, err)
		case entry.Action == ssa.DeletedAction:
			res.Deleted = append(res.Deleted, refOf(obj))
		case entry.Action == ssa.SkippedAction:
			res.Skipped = append(res.Skipped, refOf(obj))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("apply: prune: %w", err)
	}
	return res, nil
}

// WaitForDeletion waits until every object in refs is gone from the API
// server (finalizers done), or ctx ends.
func (a *Applier) WaitForDeletion(ctx context.Context, refs []ObjectRef) error {
	if len(refs) == 0 {
		return nil
	}
	objs := make([]*unstructured.Unstructured, 0, len(refs))
	for _, ref := range refs {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ref.GroupVersionKind())
		u.SetNamespace(ref.Namespace)
		u.SetName(ref.Name)
		objs = append(objs, u)
	}
	timeout := a.opts.WaitTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = timeUntil(dl)
	}
	if timeout <= 0 {
		return errors.New("apply: no time left to wait for deletion")
	}
	if err := a.manager.WaitForTermination(objs, ssa.WaitOptions{Interval: waitInterval, Timeout: timeout}); err != nil {
		return fmt.Errorf("apply: wait for deletion: %w", err)
	}
	return nil
}
