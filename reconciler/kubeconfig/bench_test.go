package kubeconfig

import (
	"bytes"
	"context"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// BenchmarkUnchangedDecision is the per-cluster cost of a reconcile in which
// nothing changed: build the kubeconfig from kept credentials and compare its
// keyed hash with the file in Git (no sealing, no write).
func BenchmarkUnchangedDecision(b *testing.B) {
	bundle, err := newBundleB()
	if err != nil {
		b.Fatal(err)
	}
	creds, err := IssueCredentials(bundle.ClientCA, tenant, 0)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{ClusterName: "alpha", Server: "https://alpha.vc-alpha.svc:443", ServerCA: bundle.ServerCA.CertPEM, User: tenant.User, Credentials: creds}
	plain, err := Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	_, certPEM := sealingPair(b, time.Hour)
	key, err := ParseSealingCertificate(certPEM, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	hashKey := bytes.Repeat([]byte{3}, 32)
	req := SealRequest{Cluster: "alpha", Target: Target{Namespace: "team-a", Name: "alpha-kubeconfig"}, Kubeconfig: plain, SealingKey: key, HashKey: hashKey}
	first, err := Seal(req)
	if err != nil {
		b.Fatal(err)
	}
	req.Previous = first.File
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := EnsureCredentials(bundle.ClientCA, &creds, tenant, 0, time.Now()); err != nil {
			b.Fatal(err)
		}
		if req.Kubeconfig, err = Build(cfg); err != nil {
			b.Fatal(err)
		}
		res, err := Seal(req)
		if err != nil || res.Change != Unchanged {
			b.Fatalf("%v %q", err, res.Change)
		}
	}
}

// BenchmarkPublishRemembered is the per-cluster cost of a no-op reconcile
// once the Publisher remembers the cluster as unchanged (the steady state;
// the target is a no-op reconcile of 500 clusters in well under 2 s).
func BenchmarkPublishRemembered(b *testing.B) {
	bundle, err := newBundleB()
	if err != nil {
		b.Fatal(err)
	}
	_, certPEM := sealingPair(b, time.Hour)
	key, err := ParseSealingCertificate(certPEM, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pub := &Publisher{Client: fake.NewClientset(), SealingKey: key, HashKey: bytes.Repeat([]byte{9}, 32)}
	c := Cluster{Name: "alpha", HostNamespace: "vc-alpha", PKI: bundle, Identity: tenant, Server: "https://alpha.vc-alpha.svc:443", Target: Target{Namespace: "team-a", Name: "alpha-kubeconfig"}}
	first, err := pub.Publish(ctx, "", c, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "", c, first.File); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := pub.Publish(ctx, "", c, first.File)
		if err != nil || res.Change != Unchanged {
			b.Fatalf("%v %q", err, res.Change)
		}
	}
}
