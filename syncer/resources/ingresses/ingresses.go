// Package ingresses syncs virtual Ingresses to the host when the cluster's
// definition enables it (--sync-ingresses): backends and TLS secrets are
// renamed to their host twins, and the host's load-balancer status flows back.
//
// An Ingress reaches the host only within the platform's word: hosts in
// --ingress-hosts, classes in --ingress-classes, annotations on
// --ingress-annotations (never controller snippets, which inject
// configuration into a shared controller), no default backend or host-less
// rule (they catch other teams' traffic), no resource backend (it could name
// any host object), and every Service and Secret it names checked against
// its twin. It never touches a host Ingress it did not create.
package ingresses

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
)

// Kind is the origin kind of synced Ingresses.
const Kind = "Ingress"

// SecretIndex indexes virtual Ingresses by the TLS Secrets they use.
const SecretIndex = "warren.dev/tls-secrets"

// IndexIngresses registers SecretIndex.
func IndexIngresses(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &networkingv1.Ingress{}, SecretIndex, func(o client.Object) []string {
		return TLSSecrets(o.(*networkingv1.Ingress))
	})
}

// TLSSecrets lists the Secrets an Ingress uses.
func TLSSecrets(in *networkingv1.Ingress) []string {
	var out []string
	for _, t := range in.Spec.TLS {
		if t.SecretName != "" {
			out = append(out, t.SecretName)
		}
	}
	return out
}

// Syncer reconciles one virtual Ingress per request.
type Syncer struct {
	*syncer.Pair
}

// SetupWithManager registers the ingress syncer.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("ingress").
		For(&networkingv1.Ingress{}).
		WatchesRawSource(s.WatchHost(&networkingv1.Ingress{}, Kind)).
		Complete(s)
}

// Reconcile syncs one Ingress down and its status up.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	v, h, found, foreign, err := syncer.Twins(ctx, s.Pair, Kind, req.NamespacedName, func() *networkingv1.Ingress { return &networkingv1.Ingress{} })
	if err != nil {
		return reconcile.Result{}, err
	}
	if foreign {
		return reconcile.Result{RequeueAfter: syncer.ConflictRetry}, nil
	}
	if v == nil || v.DeletionTimestamp != nil {
		if !found {
			return reconcile.Result{}, nil
		}
		if v == nil {
			if gone, err := s.VirtualGone(ctx, req.NamespacedName, &networkingv1.Ingress{}); !gone {
				return syncer.Requeue(time.Second, err)
			}
		}
		return reconcile.Result{}, s.DeleteHost(ctx, Kind, h)
	}
	want, why, err := s.hostIngress(ctx, v)
	if err != nil {
		return reconcile.Result{}, err
	}
	if why != "" {
		s.Events.Eventf(v, nil, corev1.EventTypeWarning, ReasonRefused, "Sync", "not synced to the host: %s", why)
		if found {
			return reconcile.Result{}, s.DeleteHost(ctx, Kind, h)
		}
		return reconcile.Result{}, nil
	}
	if !found {
		if err := s.CreateHost(ctx, Kind, v, want); err != nil && err != syncer.ErrConflict {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	next := h.DeepCopy()
	next.Labels, next.Annotations, next.Spec = want.Labels, want.Annotations, want.Spec
	if !equality.Semantic.DeepEqual(next, h) {
		if err := s.Host.Update(ctx, next); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return reconcile.Result{}, fmt.Errorf("updating host ingress %s: %w", h.Name, err)
		}
	}
	if !equality.Semantic.DeepEqual(v.Status, h.Status) {
		patched := v.DeepCopy()
		patched.Status = h.Status
		if err := s.Virtual.Status().Patch(ctx, patched, client.MergeFrom(v)); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating virtual ingress status: %w", err)
		}
	}
	return reconcile.Result{}, nil
}
