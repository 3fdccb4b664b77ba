// Package configmaps copies virtual ConfigMaps to the host only while a
// synced pod uses them (mounts, environment, the root CA bundle of projected
// tokens), and removes the copies when the last user is gone.
//
// It never copies a ConfigMap no accepted pod references, and never changes
// or deletes a host object it did not create.
package configmaps

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/warren-dev/warren/syncer"
)

// Kind is the origin kind of copied ConfigMaps.
const Kind = "ConfigMap"

// New is the ConfigMap controller: a copy of the data (and nothing else)
// while it is used.
func New(p *syncer.Pair) *syncer.Reconciler[*corev1.ConfigMap] {
	return syncer.ForCopy(p, "configmap", Kind, func(v, h *corev1.ConfigMap) { h.Data, h.BinaryData = v.Data, v.BinaryData })
}
