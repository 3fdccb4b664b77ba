package endpoints

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

func TestHostSlicesNeverPointIntoTheServiceRange(t *testing.T) {
	s := &Syncer{Pair: &syncer.Pair{
		Config: &config.Config{ServiceCIDR: "10.96.0.0/16"},
		Names:  translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"},
	}}
	v := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"192.0.2.10"}},
			{Addresses: []string{"10.96.0.1"}},
			{Addresses: []string{"not-an-ip"}},
		},
	}
	h := s.hostSlice(v)
	if len(h.Endpoints) != 1 || h.Endpoints[0].Addresses[0] != "192.0.2.10" {
		t.Fatalf("endpoints %+v", h.Endpoints)
	}
	if h.Labels[discoveryv1.LabelServiceName] != "db-x-shop-x-demo" || h.Labels[discoveryv1.LabelManagedBy] != managedBy {
		t.Errorf("labels %v", h.Labels)
	}
}
