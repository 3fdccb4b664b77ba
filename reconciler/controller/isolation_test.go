package controller

import (
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
)

// A definition never gets anything written into a namespace warren did not
// create for it: kube-system is refused when the repository is loaded, the
// Fleet's own namespace by admission (although the policy's pattern matches
// it), and a namespace a person made is a Conflict on the cluster's Applied
// condition with nothing of the cluster written, cluster-wide objects
// included. A cluster beside them is applied as usual.
func TestNothingIsAppliedIntoANamespaceNotWarrensForTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	repo := gitserver.NewRepo(t, t.TempDir(), "fleet")
	repo.CommitFiles(t, "clusters aiming at namespaces not theirs", map[string]string{
		"policies/team-a.yaml": fleettest.Policy + "  hostNamespaces: [fleets, taken-*]\n  sync: {storageClasses: true}\n",
		"clusters/alpha.yaml":  fleettest.Cluster("alpha"),
		"clusters/sys.yaml":    fleettest.Cluster("sys") + "  hostNamespace: kube-system\n",
		"clusters/home.yaml":   fleettest.Cluster("home") + "  hostNamespace: fleets\n",
		"clusters/squat.yaml":  fleettest.Cluster("squat") + "  hostNamespace: taken-by-hand\n  sync: {storageClasses: true}\n",
	})
	c, reconcile := fleetInProcess(t, repo)
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "taken-by-hand"}}); err != nil {
		t.Fatal(err)
	}

	f := reconcile()
	ready := conditions.Get(f, meta.ReadyCondition)
	for _, want := range []string{
		`clusters/sys.yaml:7: spec.hostNamespace: "kube-system" is reserved`,
		`clusters/home.yaml:7: spec.hostNamespace: policy "team-a": host namespace "fleets" is reserved`,
	} {
		if ready == nil || !strings.Contains(ready.Message, want) {
			t.Errorf("Fleet's Ready should say %q: %+v", want, ready)
		}
	}
	for _, name := range []string{"sys", "home"} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &v1alpha1.VirtualCluster{}); !apierrors.IsNotFound(err) {
			t.Errorf("VirtualCluster %s exists (get: %v)", name, err)
		}
	}
	var squat v1alpha1.VirtualCluster
	if err := c.Get(ctx, client.ObjectKey{Name: "squat"}, &squat); err != nil {
		t.Fatal(err)
	}
	applied := conditions.Get(&squat, v1alpha1.AppliedCondition)
	if applied == nil || applied.Status != metav1.ConditionFalse || !strings.Contains(applied.Message, "Namespace/taken-by-hand") ||
		!strings.Contains(applied.Message, "exists and was not created by warren for this Fleet") {
		t.Errorf("squat's Applied condition should name the namespace it may not use: %+v", applied)
	}
	var alpha v1alpha1.VirtualCluster
	if err := c.Get(ctx, client.ObjectKey{Name: "alpha"}, &alpha); err != nil || !conditions.IsTrue(&alpha, v1alpha1.AppliedCondition) {
		t.Errorf("alpha beside them was not applied (err %v): %+v", err, alpha.Status.Conditions)
	}

	for _, ns := range []string{"kube-system", "fleets", "taken-by-hand"} {
		for _, gvk := range []schema.GroupVersionKind{
			{Version: "v1", Kind: "ConfigMapList"}, {Version: "v1", Kind: "ResourceQuotaList"}, {Version: "v1", Kind: "ServiceList"},
			{Version: "v1", Kind: "SecretList"}, {Group: "apps", Version: "v1", Kind: "StatefulSetList"},
			{Group: "networking.k8s.io", Version: "v1", Kind: "NetworkPolicyList"},
		} {
			var list metav1.PartialObjectMetadataList
			list.SetGroupVersionKind(gvk)
			if err := c.List(ctx, &list, client.InNamespace(ns), client.HasLabels{"warren.dev/cluster"}); err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				t.Errorf("warren wrote %s %s/%s", gvk.Kind, ns, o.Name)
			}
		}
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "warren-taken-by-hand-syncer"}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("squat's ClusterRole was written although its namespace is not warren's (get: %v)", err)
	}
}
