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
	// Dependants before what they live in (namespaced objects before their
	// namespace, custom objects before their CRD). One at a time, so an
	// object that vanished meanwhile (its namespace went first) counts as
	// deleted rather than failing the prune.
	sort.Sort(sort.Reverse(ssa.SortableUnstructureds(objs)))
	var errs []error
	for _, u := range objs {
		ref := refOf(u)
		e, err := a.manager.Delete(ctx, u, opts)
		switch {
		case err != nil && apierrors.IsNotFound(err):
			res.Deleted = append(res.Deleted, ref)
		case err != nil:
			errs = append(errs, err)
		case e != nil && e.Action == ssa.SkippedAction:
			res.Skipped = append(res.Skipped, ref)
		default:
			res.Deleted = append(res.Deleted, ref)
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("apply: prune: %w", errors.Join(errs...))
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
