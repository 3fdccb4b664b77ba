package nodes

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
)

// A cache that has not seen the new node yet must neither make many pods
// create it once each, nor let the node's own event remove it as unused
// before the first pod's binding shows.
func TestEnsureCreatesANodeOnceWhileTheCacheLags(t *testing.T) {
	var creates atomic.Int32
	notYet := interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Node); ok {
				return apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, key.Name)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.Node); ok {
				creates.Add(1)
			}
			return c.Create(ctx, obj, opts...)
		},
	}
	virtual := fake.NewClientBuilder().WithInterceptorFuncs(notYet).
		WithIndex(&corev1.Pod{}, syncer.PodNodeIndex, syncer.PodNodeIndexer).WithStatusSubresource(&corev1.Node{}).Build()
	s := &Syncer{Pair: &syncer.Pair{Config: &config.Config{}, Virtual: virtual, VirtualReader: virtual}}

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := s.Ensure(context.Background(), "kwok-node-0"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := creates.Load(); n != 1 {
		t.Errorf("20 pods bound at once created the node %d times, want once", n)
	}

	res, err := s.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKey{Name: "kwok-node-0"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 {
		t.Error("a node just made for a pod was not kept for the binding to show")
	}
	var nodes corev1.NodeList
	if err := virtual.List(context.Background(), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		t.Errorf("%d virtual nodes after the reconcile, want the one made for the pod", len(nodes.Items))
	}
}

// A virtual node advertises the syncer's kubelet API first, keeps the host
// node's other addresses, and never lists one twice (the API server refuses
// the node then, and the virtual node stops being updated).
func TestAdvertiseKubeletPutsTheSyncerFirstOnce(t *testing.T) {
	cfg := &config.Config{KubeletAddress: "127.0.0.1:10250"}
	for _, c := range []struct {
		name      string
		host      []corev1.NodeAddress
		wantAfter []corev1.NodeAddress
	}{
		{"no host addresses", nil, nil},
		{"other host addresses follow", []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}, {Type: corev1.NodeHostName, Address: "n"}},
			[]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}, {Type: corev1.NodeHostName, Address: "n"}}},
		{"the host node has the same InternalIP", []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: "n"}},
			[]corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &corev1.Node{Status: corev1.NodeStatus{Addresses: c.host}}
			advertiseKubelet(n, cfg)
			want := append([]corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}, c.wantAfter...)
			if fmt.Sprint(n.Status.Addresses) != fmt.Sprint(want) {
				t.Errorf("addresses %v, want %v", n.Status.Addresses, want)
			}
			if n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
				t.Errorf("port %d", n.Status.DaemonEndpoints.KubeletEndpoint.Port)
			}
		})
	}
}
