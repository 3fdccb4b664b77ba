// Package events copies host Events about synced objects up to the virtual
// cluster, addressed to the virtual objects and with host names replaced by
// virtual ones, so tenants see what the host scheduler and kubelets say about
// their pods, services and claims.
//
// It only reads Events in the host namespace, only copies those about the
// syncer's own twins, and never writes to the host.
package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/warren-dev/warren/syncer"
)

// kinds are the involved-object kinds whose events are copied.
var kinds = map[string]func() client.Object{
	"Pod":                   func() client.Object { return &corev1.Pod{} },
	"Service":               func() client.Object { return &corev1.Service{} },
	"PersistentVolumeClaim": func() client.Object { return &corev1.PersistentVolumeClaim{} },
}

// Syncer is the Event kind, copied the other way: a host Event about a
// twin is the source, its virtual copy (addressed to the virtual object)
// the twin. Copies never go down.
type Syncer struct {
	*syncer.Pair
}

var _ syncer.Syncer[*corev1.Event] = &Syncer{}

// SetupWithManager registers the event syncer on host Events.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("event").
		WatchesRawSource(source.Kind(s.HostCluster.GetCache(), &corev1.Event{}, &handler.TypedEnqueueRequestForObject[*corev1.Event]{})).
		Complete(s)
}

// Reconcile copies one host Event up, if it is about one of our twins.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	e := &corev1.Event{}
	if err := s.Host.Get(ctx, req.NamespacedName, e); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return s.SyncToVirtual(ctx, req.NamespacedName, e)
}

// SyncToHost: a virtual Event never reaches the host.
func (s *Syncer) SyncToHost(context.Context, *corev1.Event) (reconcile.Result, error) {
	return reconcile.Result{}, nil
}

// SyncToVirtual copies a host Event about a twin up, or, when the copy
// exists already (a repeat), brings it in line (Sync).
func (s *Syncer) SyncToVirtual(ctx context.Context, _ types.NamespacedName, e *corev1.Event) (reconcile.Result, error) {
	want, res, err := s.copyOf(ctx, e)
	if want == nil {
		return res, err
	}
	err = s.Virtual.Create(ctx, want)
	switch {
	case err == nil:
		return reconcile.Result{}, nil
	case !apierrors.IsAlreadyExists(err):
		return reconcile.Result{}, fmt.Errorf("creating virtual event: %w", err)
	}
	existing := &corev1.Event{}
	if err := s.VirtualReader.Get(ctx, client.ObjectKeyFromObject(want), existing); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return s.Sync(ctx, existing, e)
}

// Sync carries a repeat of the host Event (its count, message and times)
// to its virtual copy v.
func (s *Syncer) Sync(ctx context.Context, v, e *corev1.Event) (reconcile.Result, error) {
	message := s.rewrite(e.InvolvedObject.Name, v.InvolvedObject.Namespace, v.InvolvedObject.Name).Replace(e.Message)
	if v.Count == e.Count && v.Message == message && v.LastTimestamp.Equal(&e.LastTimestamp) {
		return reconcile.Result{}, nil
	}
	next := v.DeepCopy()
	next.Count, next.Message, next.LastTimestamp, next.Series = e.Count, message, e.LastTimestamp, e.Series
	if err := s.Virtual.Update(ctx, next); err != nil && !apierrors.IsConflict(err) {
		return reconcile.Result{}, fmt.Errorf("updating virtual event: %w", err)
	}
	return reconcile.Result{}, nil
}

// copyOf is the virtual copy of a host Event about one of this cluster's
// twins; nil (with when to look again) when it is about anything else, or
// about an object not in the caches yet.
func (s *Syncer) copyOf(ctx context.Context, e *corev1.Event) (*corev1.Event, reconcile.Result, error) {
	io := e.InvolvedObject
	newObj, ok := kinds[io.Kind]
	if !ok || io.Namespace != s.Names.HostNamespace {
		return nil, reconcile.Result{}, nil
	}
	host := newObj()
	if err := s.Host.Get(ctx, types.NamespacedName{Namespace: io.Namespace, Name: io.Name}, host); err != nil {
		res, err := s.retryFresh(e, err)
		return nil, res, err
	}
	origin, ok := s.Names.OriginOf(host)
	if !ok || origin.Kind != io.Kind {
		return nil, reconcile.Result{}, nil
	}
	virtual := newObj()
	if err := s.Virtual.Get(ctx, types.NamespacedName{Namespace: origin.Namespace, Name: origin.Name}, virtual); err != nil {
		res, err := s.retryFresh(e, err)
		return nil, res, err
	}
	want := &corev1.Event{
		InvolvedObject: corev1.ObjectReference{
			Kind: io.Kind, APIVersion: io.APIVersion, Namespace: origin.Namespace, Name: origin.Name,
			UID: virtual.GetUID(), FieldPath: io.FieldPath,
		},
		Reason:              e.Reason,
		Message:             s.rewrite(io.Name, origin.Namespace, origin.Name).Replace(e.Message),
		Type:                e.Type,
		Source:              e.Source,
		Count:               e.Count,
		FirstTimestamp:      e.FirstTimestamp,
		LastTimestamp:       e.LastTimestamp,
		EventTime:           e.EventTime,
		Series:              e.Series,
		Action:              e.Action,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	want.Namespace = origin.Namespace
	want.Name = eventName(origin.Name, e.Name)
	return want, reconcile.Result{}, nil
}

// rewrite puts the virtual object's names where a host message names its
// twin.
func (s *Syncer) rewrite(hostName, namespace, name string) *strings.Replacer {
	return strings.NewReplacer(s.Names.HostNamespace+"/"+hostName, namespace+"/"+name, hostName, name)
}

// retryFresh retries a young event whose object is not in a cache yet (the
// event and object informers are independent); old ones are dropped.
func (s *Syncer) retryFresh(e *corev1.Event, err error) (reconcile.Result, error) {
	if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	seen := e.LastTimestamp.Time
	if seen.IsZero() {
		seen = e.EventTime.Time
	}
	if time.Since(seen) < freshness {
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return reconcile.Result{}, nil
}

// freshness is how long an event waits for its object to show up.
const freshness = 30 * time.Second

// eventName is stable per host event, so repeats update one virtual event.
func eventName(object, hostEvent string) string {
	sum := sha256.Sum256([]byte(hostEvent))
	if len(object) > 200 {
		object = object[:200]
	}
	return strings.TrimRight(object, ".-") + "." + hex.EncodeToString(sum[:])[:16]
}
