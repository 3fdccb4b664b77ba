package apply

import (
	"slices"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/test/localkube"
)

// The host's service range is read from the ServiceCIDR API, and the
// fallback for hosts without it (the API server's refusal of an address
// out of range) finds the same range; neither writes anything.
func TestDetectServiceCIDR(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{ServiceCIDR: "10.123.0.0/16"})
	c, err := client.New(plane.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DetectServiceCIDRs(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"10.123.0.0/16"}) {
		t.Fatalf("detected %v, want 10.123.0.0/16", got)
	}
	fallback, err := serviceCIDRsFromRefusal(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fallback, []string{"10.123.0.0/16"}) {
		t.Fatalf("fallback detected %v, want 10.123.0.0/16", fallback)
	}
}
