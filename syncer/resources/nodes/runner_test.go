package nodes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestAVirtualNodeExistsWhilePodsRunOnIt(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: "node-1"}}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{
			corev1.LabelHostname: "node-1", corev1.LabelOSStable: "linux", v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "runs pods of this virtual cluster"}}},
	}
	tenants := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"mine": "yes"}}}
	key := types.NamespacedName{Name: "node-1"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return &Syncer{Pair: p} }, []synctest.Case{{
		Name:           "a node a pod runs on appears, Ready",
		InitialVirtual: []client.Object{pod}, Request: key,
		ExpectedVirtual: []client.Object{pod, node},
	}, {
		Name:           "a node without pods goes",
		InitialVirtual: []client.Object{node}, Request: key,
		ExpectedVirtual: []client.Object{},
	}, {
		Name:           "a node the tenant made is left as it is",
		InitialVirtual: []client.Object{tenants}, Request: key,
		ExpectedVirtual: []client.Object{tenants},
	}})
}
