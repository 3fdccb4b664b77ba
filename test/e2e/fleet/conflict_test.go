package e2e

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// fluxLabels are the marks Flux's kustomize-controller leaves on what it
// applies.
var fluxLabels = map[string]string{
	"kustomize.toolkit.fluxcd.io/name":      "infra",
	"kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}

// Flux already manages a namespace and a Service with the names warren would
// render for a cluster: warren reports the conflict on that cluster and
// writes nothing to either object; the Fleet's other cluster runs.
func TestAForeignObjectWithARenderedNameIsReportedAndUntouched(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vc-clash-b", Labels: maps.Clone(fluxLabels)}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "vc-clash-b", Name: "clash-b", Labels: maps.Clone(fluxLabels)},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "flux-owned"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, o := range []client.Object{ns, svc} {
		if err := h.c.Create(ctx, o, client.FieldOwner("kustomize-controller")); err != nil {
			t.Fatal(err)
		}
	}
	foreign := []client.Object{ns.DeepCopy(), svc.DeepCopy()}

	names := []string{"clash-a", "clash-b"}
	repo, sha := newFleetRepo(t, t.TempDir(), "clash", "clash", names...)
	startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet("e2e-clash", fleetSpec{url: repo.FileURL()})

	var f *v1alpha1.Fleet
	testkit.Eventually(t, 2*time.Minute, "the Fleet to report the conflict", func() (bool, string) {
		f = h.fleet(fleet)
		return strings.HasSuffix(f.Status.LastAttemptedRevision, sha) && hasReason(f.Status.Conditions, "Conflict"), fleetState(f)
	})
	t.Logf("Fleet says: %s", fleetNotReady(t, f, "Namespace/vc-clash-b"))
	vc := h.mustCluster("clash-b")
	applied := condition(vc, v1alpha1.AppliedCondition)
	t.Logf("clash-b says: %s", applied.Message)
	if applied.Status != metav1.ConditionFalse || applied.Reason != "Conflict" {
		t.Errorf("clash-b should be Applied=False with reason Conflict: %s", clusterState(vc))
	}
	for _, want := range []string{"Namespace/vc-clash-b", "Flux", "name=infra"} {
		if !strings.Contains(applied.Message, want) {
			t.Errorf("clash-b's Applied message should name %q: %s", want, applied.Message)
		}
	}
	h.waitClustersReady(2*time.Minute, "clash-a")

	// A second poll must not write to them either.
	h.requestReconcile(fleet, time.Minute)
	for _, before := range foreign {
		now := before.DeepCopyObject().(client.Object)
		if err := h.c.Get(ctx, client.ObjectKeyFromObject(before), now); err != nil {
			t.Fatalf("the foreign object %s is gone: %v", before.GetName(), err)
		}
		if now.GetResourceVersion() != before.GetResourceVersion() {
			t.Errorf("%T %s was written to: resourceVersion %s → %s, labels %v", now, now.GetName(), before.GetResourceVersion(), now.GetResourceVersion(), now.GetLabels())
		}
		for _, mf := range now.GetManagedFields() {
			if mf.Manager == "warren" {
				t.Errorf("%T %s has fields managed by warren: %+v", now, now.GetName(), mf)
			}
		}
		if !maps.Equal(now.GetLabels(), before.GetLabels()) {
			t.Errorf("%T %s labels changed: %v", now, now.GetName(), now.GetLabels())
		}
	}
	// Nothing of clash-b's was put into the namespace Flux owns.
	var written []string
	for k, o := range h.sweep(v1alpha1.ClusterLabel + "=clash-b") {
		if o.Namespace == "vc-clash-b" {
			written = append(written, k)
		}
	}
	if len(written) > 0 {
		t.Errorf("warren wrote into the namespace Flux owns: %v", written)
	}
}

// Two Fleets define a cluster of one name: the second one is refused and the
// first one's cluster is left as it is.
func TestTwoFleetsDefiningOneClusterConflict(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	first, sha := newFleetRepo(t, t.TempDir(), "twice-1", "twice", "twice-a")
	second, sha2 := newFleetRepo(t, t.TempDir(), "twice-2", "twice", "twice-a")
	startReconciler(t, plane, reconcilerOptions{})
	one := h.createFleet("e2e-twice-1", fleetSpec{url: first.FileURL()})
	h.waitFleetApplied(one, sha, 2*time.Minute)
	h.waitClustersReady(2*time.Minute, "twice-a")
	before := h.snapshot("twice-a")

	two := h.createFleet("e2e-twice-2", fleetSpec{url: second.FileURL()})
	var f *v1alpha1.Fleet
	testkit.Eventually(t, time.Minute, "the second Fleet to report the conflict", func() (bool, string) {
		f = h.fleet(two)
		return strings.HasSuffix(f.Status.LastAttemptedRevision, sha2) && hasReason(f.Status.Conditions, "Conflict"), fleetState(f)
	})
	t.Logf("second Fleet says: %s", fleetNotReady(t, f, "VirtualCluster/twice-a", "e2e-twice-1/fleet"))
	h.requestReconcile(one, time.Minute)
	h.assertUnchanged(before, "twice-a")
	vc := h.mustCluster("twice-a")
	if vc.Labels[v1alpha1.FleetNamespaceLabel] != "e2e-twice-1" {
		t.Errorf("VirtualCluster twice-a changed hands: labels %v", vc.Labels)
	}
}
