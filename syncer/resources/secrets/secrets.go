// Package secrets copies virtual Secrets to the host only while a synced
// pod uses them (mounts, environment, image pull secrets) or, with
// --sync-ingresses, a synced Ingress names them for TLS, and removes the
// copies when the last user is gone.
//
// It never copies a Secret nothing synced references, never turns a
// virtual service-account token into a host one, and never changes or
// deletes a host object it did not create.
package secrets

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/warren-dev/warren/syncer"
)

// Kind is the origin kind of copied Secrets.
const Kind = "Secret"

// New is the Secret controller: a copy of the data while it is used.
func New(p *syncer.Pair) *syncer.Reconciler[*corev1.Secret] {
	return syncer.ForCopy(p, "secret", Kind, CopyData)
}

// CopyData is what the host copy carries: the data, and the type, except
// that a virtual service-account token is an opaque Secret on the host (a
// token of the virtual API, not one the host should act on). The type is
// set once: it cannot change.
func CopyData(v, h *corev1.Secret) {
	typ := v.Type
	if typ == corev1.SecretTypeServiceAccountToken {
		typ = corev1.SecretTypeOpaque
	}
	if h.Type == "" {
		h.Type = typ
	}
	h.Data = v.Data
}
