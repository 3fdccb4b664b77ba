package controller

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// A fenced client writes only while the replica leads; reads always go
// through, and every kind of write is refused once it no longer leads.
func TestFencedClientWritesOnlyWhileLeading(t *testing.T) {
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}}
	base := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(cm.DeepCopy()).WithStatusSubresource(&corev1.Pod{}).Build()
	leads := true
	c := fenced(base, func(context.Context) error {
		if leads {
			return nil
		}
		return errNotLeading
	})
	if err := c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "new"}}); err != nil {
		t.Fatalf("create while leading: %v", err)
	}

	leads = false
	var got corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKeyFromObject(cm), &got); err != nil {
		t.Fatalf("a read while not leading: %v", err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
	for name, write := range map[string]func() error{
		"create": func() error {
			return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other"}})
		},
		"update":        func() error { return c.Update(ctx, got.DeepCopy()) },
		"patch":         func() error { return c.Patch(ctx, got.DeepCopy(), client.MergeFrom(&got)) },
		"delete":        func() error { return c.Delete(ctx, got.DeepCopy()) },
		"deleteAllOf":   func() error { return c.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace("ns")) },
		"status patch":  func() error { return c.Status().Patch(ctx, pod, client.MergeFrom(pod.DeepCopy())) },
		"status update": func() error { return c.Status().Update(ctx, pod) },
	} {
		if err := write(); !errors.Is(err, errNotLeading) {
			t.Errorf("%s while not leading: got %v, want it refused", name, err)
		}
	}
	var list corev1.ConfigMapList
	if err := base.List(ctx, &list); err != nil || len(list.Items) != 2 {
		t.Errorf("the host holds %d ConfigMaps (err %v), want the original and the one made while leading", len(list.Items), err)
	}
	if fenced(base, nil) != base {
		t.Error("without leader election the client is not the one given")
	}
}
