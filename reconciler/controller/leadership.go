package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// leaderElectionID names the Lease the reconciler's replicas elect a leader
// with (a shard's is this and a hash of its selector: leaseName).
const leaderElectionID = "warren-reconciler-leader"

// errNotLeading is a write refused because this replica may no longer hold
// the lease: it stops and writes nothing more.
var errNotLeading = errors.New("no longer the leader")

// renewedLock is the Lease lock leader election runs on; it remembers when
// this replica last renewed its lease, taking the time before the request
// is sent, so no other replica can have taken the lease over before that
// time plus the lease duration.
type renewedLock struct {
	resourcelock.Interface
	mu      sync.Mutex
	renewed time.Time // zero: not holding the lease
}

func (l *renewedLock) Create(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	return l.record(record, func() error { return l.Interface.Create(ctx, record) })
}

func (l *renewedLock) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	return l.record(record, func() error { return l.Interface.Update(ctx, record) })
}

func (l *renewedLock) record(record resourcelock.LeaderElectionRecord, write func() error) error {
	sent := time.Now()
	err := write()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil && record.HolderIdentity == l.Identity():
		l.renewed = sent
	case err == nil:
		l.renewed = time.Time{} // released
	}
	return err
}

// leaseLock makes the lock leader election runs on, and the check that
// fences this replica's writes with it: a replica that was paused (or cut
// off) past its lease may resume in the middle of a reconcile while
// another replica already took over; controller-runtime ends the process
// soon after, but a write in between (a prune, an older render, a status)
// would undo the new leader's work. The check needs no request: it passes
// while this replica renewed its lease less than renewDeadline ago (the
// time after which controller-runtime gives the lease up), so the moment a
// paused replica runs again, before it could renew, it writes nothing.
func leaseLock(restConfig *rest.Config, namespace, lease string, renewDeadline time.Duration) (resourcelock.Interface, func(context.Context) error, error) {
	if namespace == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return nil, nil, fmt.Errorf("leader election: not running in a pod; set --leader-election-namespace: %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, nil, fmt.Errorf("leader election: %w", err)
	}
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, namespace, lease,
		resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID())}, restConfig, renewDeadline)
	if err != nil {
		return nil, nil, fmt.Errorf("leader election: %w", err)
	}
	renewed := &renewedLock{Interface: lock}
	leading := func(context.Context) error {
		renewed.mu.Lock()
		last := renewed.renewed
		renewed.mu.Unlock()
		if last.IsZero() {
			return fmt.Errorf("%w: Lease %s/%s is not held by this replica", errNotLeading, namespace, lease)
		}
		if age := time.Since(last); age >= renewDeadline {
			return fmt.Errorf("%w: Lease %s/%s last renewed %s ago", errNotLeading, namespace, lease, age.Round(time.Millisecond))
		}
		return nil
	}
	return renewed, leading, nil
}

// fenced returns c with every write (create, update, patch, apply, delete,
// and those of subresources such as status) refused unless leading says
// this replica still leads; reads go through. Without leader election
// (leading nil) it returns c.
func fenced(c client.Client, leading func(context.Context) error) client.Client {
	if leading == nil {
		return c
	}
	return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return firstLeading(ctx, leading, func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return firstLeading(ctx, leading, func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			return firstLeading(ctx, leading, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			return firstLeading(ctx, leading, func() error { return c.Apply(ctx, obj, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return firstLeading(ctx, leading, func() error { return c.Delete(ctx, obj, opts...) })
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			return firstLeading(ctx, leading, func() error { return c.DeleteAllOf(ctx, obj, opts...) })
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			return firstLeading(ctx, leading, func() error { return c.SubResource(sub).Create(ctx, obj, subObj, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return firstLeading(ctx, leading, func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			return firstLeading(ctx, leading, func() error { return c.SubResource(sub).Patch(ctx, obj, patch, opts...) })
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			return firstLeading(ctx, leading, func() error { return c.SubResource(sub).Apply(ctx, obj, opts...) })
		},
	})
}

// firstLeading runs write only while this replica leads.
func firstLeading(ctx context.Context, leading func(context.Context) error, write func() error) error {
	if err := leading(ctx); err != nil {
		return err
	}
	return write()
}

// noWatch lets a plain client.Client be intercepted; nothing here watches
// through it.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not available on a fenced client")
}

// stillLeading fences one step of the Fleet controller (nil without leader
// election).
func (r *FleetReconciler) stillLeading(ctx context.Context) error {
	if r.Leading == nil {
		return nil
	}
	return r.Leading(ctx)
}
