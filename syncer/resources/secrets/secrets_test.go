package secrets

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestSecretsAreCopiedWhileAPodOrAnIngressUsesThem(t *testing.T) {
	token := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "shop", UID: "u-creds"},
		Type:       corev1.SecretTypeServiceAccountToken,
		Data:       map[string][]byte{"token": []byte("virtual-token")},
	}
	puller := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
		Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "creds"}},
			Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
	tls := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       networkingv1.IngressSpec{TLS: []networkingv1.IngressTLS{{SecretName: "creds"}}},
	}
	opaqueCopy := synctest.Twin(Kind, token, &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: token.Data})
	key := types.NamespacedName{Namespace: "shop", Name: "creds"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name:           "a pod's pull secret is copied, a service-account token as an opaque Secret",
		InitialVirtual: []client.Object{token, puller}, Request: key,
		ExpectedVirtual: []client.Object{token, puller},
		ExpectedHost:    []client.Object{opaqueCopy},
	}, {
		Name:           "a TLS Secret of an Ingress is copied when Ingresses are synced",
		Config:         config.Config{SyncIngresses: true},
		InitialVirtual: []client.Object{token, tls}, Request: key,
		ExpectedVirtual: []client.Object{token, tls},
		ExpectedHost:    []client.Object{opaqueCopy},
	}, {
		Name:           "and only then",
		InitialVirtual: []client.Object{token, tls}, InitialHost: []client.Object{opaqueCopy}, Request: key,
		ExpectedVirtual: []client.Object{token, tls},
	}, {
		Name:           "a copy this cluster did not make is never taken for its own",
		InitialVirtual: []client.Object{token, puller}, Request: key,
		InitialHost:     []client.Object{synctest.Foreign(token, &corev1.Secret{Data: map[string][]byte{"host": []byte("x")}})},
		ExpectedVirtual: []client.Object{token, puller},
		ExpectedHost:    []client.Object{synctest.Foreign(token, &corev1.Secret{Data: map[string][]byte{"host": []byte("x")}})},
		Events:          []string{"HostNameConflict"},
	}})
}
