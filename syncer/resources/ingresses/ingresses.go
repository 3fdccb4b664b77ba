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

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
)

// Kind is the origin kind of synced Ingresses.
const Kind = "Ingress"

// Syncer is the Ingress kind.
type Syncer struct {
	syncer.Twin[*networkingv1.Ingress]
}

var _ syncer.Syncer[*networkingv1.Ingress] = &Syncer{}

// New is the Ingress controller.
func New(p *syncer.Pair) *syncer.Reconciler[*networkingv1.Ingress] {
	return syncer.For(p, "ingress", Kind, &Syncer{Twin: syncer.Twin[*networkingv1.Ingress]{Pair: p, Kind: Kind}})
}

// SyncToHost creates the twin of an Ingress the platform allows.
func (s *Syncer) SyncToHost(ctx context.Context, v *networkingv1.Ingress) (reconcile.Result, error) {
	want, why, err := s.hostIngress(ctx, v)
	return s.CreateOrRefuse(ctx, ReasonRefused, v, want, string(why), err)
}

// Sync brings the twin in line (or removes it when the Ingress is no
// longer allowed) and the host's status up.
func (s *Syncer) Sync(ctx context.Context, v, h *networkingv1.Ingress) (reconcile.Result, error) {
	want, why, err := s.hostIngress(ctx, v)
	if err != nil || why != "" {
		return s.Refuse(ctx, ReasonRefused, v, h, string(why), err)
	}
	next := h.DeepCopy()
	next.Labels, next.Annotations, next.Spec = want.Labels, want.Annotations, want.Spec
	if err := s.UpdateHost(ctx, Kind, next, h); err != nil {
		return reconcile.Result{}, err
	}
	up := v.DeepCopy()
	up.Status = h.Status
	return reconcile.Result{}, s.PatchVirtualStatus(ctx, up, v)
}
