package namespaces

import (
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestADeletedNamespaceTakesOnlyItsOwnHostObjects(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	in := func(namespace, name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	}
	left := []client.Object{
		synctest.Twin("ConfigMap", in("shop", "settings"), &corev1.ConfigMap{}),
		synctest.Twin("Service", in("shop", "web"), &corev1.Service{}),
		synctest.Twin("Pod", in("shop", "web-0"), &corev1.Pod{}),
	}
	others := []client.Object{
		synctest.Twin("ConfigMap", in("other", "settings"), &corev1.ConfigMap{}),
		// Labelled as the namespace's, but not marked by this cluster.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "platform", Namespace: synctest.HostNamespace,
			Labels: map[string]string{v1alpha1.SyncerNamespaceLabel: "shop"}}},
	}
	newSweeper := func(p *syncer.Pair) reconcile.Reconciler { return &Syncer{Pair: p} }
	synctest.Run(t, newSweeper, []synctest.Case{{
		Name:        "once the namespace is gone its twins go, others stay",
		InitialHost: append(append([]client.Object{}, left...), others...), Request: types.NamespacedName{Name: "shop"},
		ExpectedVirtual: []client.Object{},
		ExpectedHost:    others,
	}, {
		Name:           "while it exists nothing goes",
		InitialVirtual: []client.Object{ns}, InitialHost: append(append([]client.Object{}, left...), others...), Request: types.NamespacedName{Name: "shop"},
		ExpectedVirtual: []client.Object{ns},
		ExpectedHost:    append(append([]client.Object{}, left...), others...),
	}})
}
