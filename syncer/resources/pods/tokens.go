package pods

import (
	"context"
	"fmt"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/syncer/translate"
)

// KindPodToken is the origin kind of a pod's token Secret on the host.
const KindPodToken = "PodToken"

const annotationRefreshAt = "warren.dev/refresh-at"

// ensureTokens keeps the host Secret holding the pod's projected
// service-account tokens, requested from the virtual API (TokenRequest, with
// the audience and expiry the pod asked for, bound to the virtual pod). The
// Secret is owned by the host pod, so the host deletes it with the pod. It
// returns when the tokens should be refreshed (0: no tokens).
func (r *Syncer) ensureTokens(ctx context.Context, v, h *corev1.Pod) (time.Duration, error) {
	projections := TokenProjections(v)
	if len(projections) == 0 {
		return 0, nil
	}
	name := TokenSecretName(r.Names, v)
	existing := &corev1.Secret{}
	err := r.Host.Get(ctx, types.NamespacedName{Namespace: r.Names.HostNamespace, Name: name}, existing)
	switch {
	case err == nil && !r.Names.Owns(existing, KindPodToken, v.Namespace, v.Name):
		r.Conflict(v, "Secret", name)
		return 0, nil
	case err == nil && existing.Annotations[v1alpha1.OriginUIDAnnotation] == string(v.UID):
		if at, perr := time.Parse(time.RFC3339, existing.Annotations[annotationRefreshAt]); perr == nil && time.Until(at) > 0 {
			return time.Until(at), nil
		}
	case err != nil && !apierrors.IsNotFound(err):
		return 0, fmt.Errorf("reading token secret: %w", err)
	}
	// Written moments ago, and the cache has not caught up yet.
	key := types.NamespacedName{Namespace: v.Namespace, Name: v.Name}
	if m := r.memo.get(key, v.UID); time.Since(m.tokensWritten) < cacheLag && time.Until(m.tokensRefresh) > 0 {
		return time.Until(m.tokensRefresh), nil
	}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: v.Namespace, Name: v.Spec.ServiceAccountName}}
	if sa.Name == "" {
		sa.Name = "default"
	}
	data := map[string][]byte{}
	refresh := time.Hour
	for _, p := range projections {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(p.ExpirationSeconds),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: v.Name, UID: v.UID},
		}}
		if p.Audience != "" {
			tr.Spec.Audiences = []string{p.Audience}
		}
		if err := r.Virtual.SubResource("token").Create(ctx, sa, tr); err != nil {
			return 0, fmt.Errorf("requesting a token for service account %s/%s: %w", sa.Namespace, sa.Name, err)
		}
		data[p.Key] = []byte(tr.Status.Token)
		// Refresh at 80% of the lifetime, as a kubelet does.
		if life := time.Until(tr.Status.ExpirationTimestamp.Time); life*8/10 < refresh {
			refresh = life * 8 / 10
		}
	}
	if refresh < time.Minute {
		refresh = time.Minute
	}

	s := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: data}
	s.Name, s.Namespace = name, r.Names.HostNamespace
	r.Names.Mark(s, translate.Origin{Kind: KindPodToken, Namespace: v.Namespace, Name: v.Name, UID: string(v.UID)})
	s.Annotations[annotationRefreshAt] = time.Now().Add(refresh).UTC().Format(time.RFC3339)
	s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: h.Name, UID: h.UID}}
	if err == nil {
		s.ResourceVersion = existing.ResourceVersion
		if err := r.Host.Update(ctx, s); err != nil {
			return 0, fmt.Errorf("updating token secret: %w", err)
		}
	} else if err := r.CreateHost(ctx, KindPodToken, v, s); err != nil {
		return 0, err
	}
	r.memo.update(key, v.UID, func(m *podMemo) { m.tokensWritten, m.tokensRefresh = time.Now(), time.Now().Add(refresh) })
	return refresh, nil
}
