// Package ingresses syncs virtual Ingresses to the host when the cluster's
// definition enables it (--sync-ingresses): backends and TLS secrets are
// renamed to their host twins, and the host's load-balancer status flows back.
//
// It never copies resource backends (they could name any host object) or
// controller snippet annotations (they inject configuration into a shared
// ingress controller), and never touches a host Ingress it did not create.
package ingresses

import (
	"context"
	"fmt"
	"strings"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/translate"
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
	want := s.hostIngress(v)
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

func (s *Syncer) hostIngress(v *networkingv1.Ingress) *networkingv1.Ingress {
	ns := v.Namespace
	h := &networkingv1.Ingress{}
	h.Name = s.Names.HostName(ns, v.Name)
	h.Labels = translate.HostLabels(v.Labels)
	h.Annotations = map[string]string{}
	for k, val := range v.Annotations {
		if !strings.HasPrefix(k, "warren.dev/") && !strings.Contains(k, "snippet") {
			h.Annotations[k] = val
		}
	}
	s.Names.Mark(h, translate.Origin{Kind: Kind, Namespace: ns, Name: v.Name, UID: string(v.UID)})
	spec := v.Spec.DeepCopy()
	backend := func(b *networkingv1.IngressBackend) *networkingv1.IngressBackend {
		if b == nil || b.Service == nil {
			return nil
		}
		b.Service.Name = s.Names.HostName(ns, b.Service.Name)
		return b
	}
	spec.DefaultBackend = backend(spec.DefaultBackend)
	for i := range spec.Rules {
		if http := spec.Rules[i].HTTP; http != nil {
			var paths []networkingv1.HTTPIngressPath
			for _, p := range http.Paths {
				if b := backend(&p.Backend); b != nil {
					p.Backend = *b
					paths = append(paths, p)
				}
			}
			http.Paths = paths
		}
	}
	for i := range spec.TLS {
		if spec.TLS[i].SecretName != "" {
			spec.TLS[i].SecretName = s.Names.HostName(ns, spec.TLS[i].SecretName)
		}
	}
	h.Spec = *spec
	return h
}
