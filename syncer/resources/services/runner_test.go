package services

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/synctest"
)

// The Service kind on the shared runner (node ports and addresses the host
// refuses are in the tables above, against a fake allocator).
func TestServicesOnTheSharedRunner(t *testing.T) {
	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u-web"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.4.4", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	external := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}}
	kind := &Syncer{Twin: syncer.Twin[*corev1.Service]{Kind: Kind, Pair: &syncer.Pair{Config: &config.Config{}, Names: synctest.Names}}}
	twin := func(v *corev1.Service) *corev1.Service {
		h := kind.hostService(v)
		h.Annotations = nil
		return synctest.Twin(Kind, v, h)
	}
	newService := func(p *syncer.Pair) reconcile.Reconciler { return New(p) }
	synctest.Run(t, newService, []synctest.Case{{
		Name:           "a Service gets a twin with its ClusterIP",
		InitialVirtual: []client.Object{web}, Request: types.NamespacedName{Namespace: "shop", Name: "web"},
		ExpectedVirtual: []client.Object{web},
		ExpectedHost:    []client.Object{twin(web)},
	}, {
		Name:           "an ExternalName Service has no twin, and another's twin stays",
		InitialVirtual: []client.Object{external}, InitialHost: []client.Object{twin(web)}, Request: types.NamespacedName{Namespace: "shop", Name: "db"},
		ExpectedVirtual: []client.Object{external},
		ExpectedHost:    []client.Object{twin(web)},
	}, {
		Name:        "a deleted Service takes its twin",
		InitialHost: []client.Object{twin(web)}, Request: types.NamespacedName{Namespace: "shop", Name: "web"},
	}})
}
