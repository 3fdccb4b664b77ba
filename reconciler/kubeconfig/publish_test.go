package kubeconfig

import (
	"bytes"
	"context"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// A pure unit test of the Publisher's memory, on a fake clientset: the real
// API server path is covered end to end in e2e_test.go.
func TestAnUnchangedClusterCostsNoAPICallOnTheNextReconcile(t *testing.T) {
	ctx := context.Background()
	b := newBundle(t)
	_, certPEM := sealingPair(t, time.Hour)
	key, err := ParseSealingCertificate(certPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset()
	clock := time.Now()
	pub := &Publisher{Client: client, SealingKey: key, HashKey: bytes.Repeat([]byte{9}, 32), Now: func() time.Time { return clock }}
	c := Cluster{Name: "alpha", HostNamespace: "vc-alpha", PKI: b, Identity: tenant, Server: "https://alpha.vc-alpha.svc:443", Target: Target{Namespace: "team-a", Name: "alpha-kubeconfig"}}

	first, err := pub.Publish(ctx, "", c, nil)
	if err != nil || first.Change != NewFile {
		t.Fatalf("first: %v %q", err, first.Change)
	}
	checked, err := pub.Publish(ctx, "", c, first.File) // full check, then remembered
	if err != nil || checked.Change != Unchanged {
		t.Fatalf("second: %v %q", err, checked.Change)
	}
	calls := len(client.Actions())
	for range 10 {
		again, err := pub.Publish(ctx, "", c, first.File)
		if err != nil || again.Change != Unchanged || !bytes.Equal(again.File, first.File) {
			t.Fatalf("remembered: %v %q", err, again.Change)
		}
	}
	if n := len(client.Actions()) - calls; n != 0 {
		t.Fatalf("%d API calls for clusters that did not change", n)
	}

	// Any input changing, the renewal time, or the recheck interval passing
	// sends it down the full path again.
	moved := c
	moved.Server = "https://alpha.example.com:443"
	if res, _ := pub.Publish(ctx, "", moved, first.File); res.Change != ContentChanged {
		t.Errorf("new server: %q", res.Change)
	}
	if res, _ := pub.Publish(ctx, "", c, first.File); res.Change != Unchanged {
		t.Errorf("back to the old server: %q", res.Change)
	}
	calls = len(client.Actions())
	clock = clock.Add(recheckInterval)
	if res, _ := pub.Publish(ctx, "", c, first.File); res.Change != Unchanged || len(client.Actions()) == calls {
		t.Errorf("after the recheck interval: %q, %d calls", res.Change, len(client.Actions())-calls)
	}
	clock = clock.Add(61 * 24 * time.Hour)
	if res, _ := pub.Publish(ctx, "", c, first.File); res.Change != ContentChanged || res.Credentials != CredentialsRenewed {
		t.Errorf("at renewal time: %q %q", res.Change, res.Credentials)
	}
}
