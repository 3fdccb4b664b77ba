package storageclasses

import (
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

// The mirror on the shared runner: host classes are the source, virtual
// copies the twins.
func TestTheMirrorOnTheSharedRunner(t *testing.T) {
	host := hostClass("fast")
	tenants := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Provisioner: "tenant.example.com"}
	edited := Mirror(host)
	edited.MountOptions = []string{"sync"}
	key := types.NamespacedName{Name: "fast"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return &Syncer{Pair: p} }, []synctest.Case{{
		Name:        "a host class is mirrored",
		InitialHost: []client.Object{host}, Request: key,
		ExpectedVirtual: []client.Object{Mirror(host)},
		ExpectedHost:    []client.Object{host},
	}, {
		Name:        "a tenant's edit of a copy is reverted",
		InitialHost: []client.Object{host}, InitialVirtual: []client.Object{edited}, Request: key,
		ExpectedVirtual: []client.Object{Mirror(host)},
		ExpectedHost:    []client.Object{host},
	}, {
		Name:           "a copy goes with its host class",
		InitialVirtual: []client.Object{Mirror(host)}, Request: key,
	}, {
		Name:        "a tenant's own class of that name is left alone, and the tenant told",
		InitialHost: []client.Object{host}, InitialVirtual: []client.Object{tenants}, Request: key,
		ExpectedVirtual: []client.Object{tenants},
		ExpectedHost:    []client.Object{host},
		Events:          []string{ReasonNotMirrored},
	}})
}
