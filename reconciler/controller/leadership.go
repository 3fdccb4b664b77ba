package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaderElectionID names the Lease the reconciler's replicas elect a leader with.
const leaderElectionID = "warren-reconciler-leader"

// errNotLeading is a reconcile that found, before writing, that this
// replica no longer holds the lease: it stops and writes nothing more.
var errNotLeading = errors.New("no longer the leader")

// leaseLock makes the lock leader election runs on, and the check that
// fences this replica's writes with it: a replica that was paused (or cut
// off) past its lease may resume in the middle of a reconcile while
// another replica already took over; controller-runtime ends the process
// soon after, but a prune or a status write in between would undo the new
// leader's work. So before each of those the reconcile reads the Lease and
// goes on only while this replica holds it and it has not expired.
func leaseLock(restConfig *rest.Config, namespace string, renewDeadline time.Duration) (resourcelock.Interface, func(context.Context) error, error) {
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
	id := host + "_" + string(uuid.NewUUID())
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, namespace, leaderElectionID,
		resourcelock.ResourceLockConfig{Identity: id}, restConfig, renewDeadline)
	if err != nil {
		return nil, nil, fmt.Errorf("leader election: %w", err)
	}
	leading := func(ctx context.Context) error {
		record, _, err := lock.Get(ctx)
		if err != nil {
			return fmt.Errorf("%w: reading Lease %s/%s: %v", errNotLeading, namespace, leaderElectionID, err)
		}
		if record.HolderIdentity != id {
			return fmt.Errorf("%w: Lease %s/%s is held by %s", errNotLeading, namespace, leaderElectionID, record.HolderIdentity)
		}
		expiry := record.RenewTime.Add(time.Duration(record.LeaseDurationSeconds) * time.Second)
		if time.Now().After(expiry) {
			return fmt.Errorf("%w: Lease %s/%s expired at %s", errNotLeading, namespace, leaderElectionID, expiry.UTC().Format(time.RFC3339))
		}
		return nil
	}
	return lock, leading, nil
}

// stillLeading fences one write of the Fleet controller (nil without leader
// election).
func (r *FleetReconciler) stillLeading(ctx context.Context) error {
	if r.Leading == nil {
		return nil
	}
	return r.Leading(ctx)
}
