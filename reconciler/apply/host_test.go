package apply

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// The host's node-port range is read from the API server's refusal of a
// port outside it, without writing anything.
func TestDetectNodePortRange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	plane := localkube.ForTest(t, localkube.Options{NodePortRange: "31000-31999"})
	c, err := client.New(plane.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DetectNodePortRange(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got != "31000-31999" {
		t.Fatalf("detected %q, want 31000-31999", got)
	}
	var services corev1.ServiceList
	if err := c.List(t.Context(), &services, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatal(err)
	}
	for _, s := range services.Items {
		if s.Name != "kubernetes" {
			t.Errorf("detection left Service %s behind", s.Name)
		}
	}
}
