package controller

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

// Each shard elects its leader on a Lease of its own; an unsharded
// reconciler keeps the Lease it always had.
func TestEachShardHasItsOwnLeaseAndUserAgent(t *testing.T) {
	unsharded := Config{Version: "v1"}
	a := Config{Version: "v1", WatchLabelSelector: "sharding.fluxcd.io/key=shard1"}
	b := Config{Version: "v1", WatchLabelSelector: "sharding.fluxcd.io/key=shard2"}
	if got := leaseName(unsharded); got != "warren-reconciler-leader" {
		t.Errorf("unsharded lease %q, want the one it always had", got)
	}
	if leaseName(a) == leaseName(b) || leaseName(a) == leaseName(unsharded) {
		t.Errorf("shards share a lease: %q, %q, %q", leaseName(a), leaseName(b), leaseName(unsharded))
	}
	if ua := userAgent(a); !strings.Contains(ua, "warren-reconciler/v1") || !strings.Contains(ua, "sharding.fluxcd.io/key=shard1") {
		t.Errorf("shard user agent %q names neither the reconciler nor its shard", ua)
	}
}

func TestAShardSelectorMatchesOnlyItsFleets(t *testing.T) {
	if sel, err := shardSelector(Config{}); sel != nil || err != nil {
		t.Fatalf("no selector: got %v, %v; want every Fleet (nil)", sel, err)
	}
	main, err := shardSelector(Config{WatchLabelSelector: "!sharding.fluxcd.io/key"})
	if err != nil {
		t.Fatal(err)
	}
	shard1, err := shardSelector(Config{WatchLabelSelector: "sharding.fluxcd.io/key=shard1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels       labels.Set
		main, shard1 bool
	}{
		{labels.Set{}, true, false},
		{labels.Set{"sharding.fluxcd.io/key": "shard1"}, false, true},
		{labels.Set{"sharding.fluxcd.io/key": "shard2"}, false, false},
	} {
		if main.Matches(c.labels) != c.main || shard1.Matches(c.labels) != c.shard1 {
			t.Errorf("labels %v: main %v, shard1 %v; want %v, %v", c.labels, main.Matches(c.labels), shard1.Matches(c.labels), c.main, c.shard1)
		}
	}
	if _, err := shardSelector(Config{WatchLabelSelector: "sharding.fluxcd.io/key in (a"}); err == nil || !strings.Contains(err.Error(), "--watch-label-selector") {
		t.Errorf("a broken selector: %v, want an error naming the flag", err)
	}
}
