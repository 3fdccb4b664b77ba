package controller

import (
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// On a sharded install each HostCluster is checked, and its status
// written, by the one shard its labels select, as for Fleets: the
// unlabelled ones by the reconciler that watches `!sharding.fluxcd.io/key`.
// Relabelling one moves its checks to the other shard.
func TestEachHostClusterIsCheckedByOneShard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	c, plane, scheme := planeWithFleetsNamespace(t)
	ctx := t.Context()
	// Its kubeconfig Secret is missing: a check says so in the status.
	hc := &v1alpha1.HostCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "fleets", Name: "east", Labels: map[string]string{v1alpha1.ShardingKeyLabel: "shard1"}},
		Spec:       v1alpha1.HostClusterSpec{KubeConfig: v1alpha1.HostKubeConfig{SecretRef: meta.SecretKeyReference{Name: "east-kubeconfig"}}},
	}
	if err := c.Create(ctx, hc); err != nil {
		t.Fatal(err)
	}
	shardOf := func(selector string) *HostClusterReconciler {
		sel, err := shardSelector(Config{WatchLabelSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		hosts := &hostRegistry{reader: c, scheme: scheme, base: plane.Config}
		return &HostClusterReconciler{Client: c, Hosts: hosts, EventRecorder: record.NewFakeRecorder(10), Shard: sel}
	}
	main, shard1 := shardOf("!"+v1alpha1.ShardingKeyLabel), shardOf(v1alpha1.ShardingKeyLabel+"=shard1")
	check := func(r *HostClusterReconciler) *v1alpha1.HostCluster {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(hc)}); err != nil {
			t.Fatal(err)
		}
		var got v1alpha1.HostCluster
		if err := c.Get(ctx, client.ObjectKeyFromObject(hc), &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}

	if got := check(main); got.Status.LastCheckedAt != nil || len(got.Status.Conditions) > 0 {
		t.Fatalf("the main reconciler checked shard1's HostCluster: %+v", got.Status)
	}
	checked := check(shard1)
	if checked.Status.LastCheckedAt == nil || !conditions.IsFalse(checked, meta.ReadyCondition) {
		t.Fatalf("shard1 did not check its HostCluster: %+v", checked.Status)
	}

	// Unlabelled, it is the main reconciler's. Its Secret appears, with
	// something that is no kubeconfig: a check would say so.
	moved := checked.DeepCopy()
	delete(moved.Labels, v1alpha1.ShardingKeyLabel)
	if err := c.Patch(ctx, moved, client.MergeFrom(checked)); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "fleets", Name: "east-kubeconfig"}, Data: map[string][]byte{"value": []byte("not a kubeconfig")}}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if got := check(shard1); got.Status.LastError != checked.Status.LastError {
		t.Errorf("shard1 checked a HostCluster no longer its own: %q", got.Status.LastError)
	}
	if got := check(main); got.Status.LastError == checked.Status.LastError || !conditions.IsFalse(got, meta.ReadyCondition) {
		t.Errorf("the main reconciler did not check the unlabelled HostCluster: %+v", got.Status)
	}
}
