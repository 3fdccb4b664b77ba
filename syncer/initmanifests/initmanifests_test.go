package initmanifests

import (
	"context"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestParseReadsEveryDocumentInOrder(t *testing.T) {
	objs, err := Parse(`---
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
# a comment only
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: admins, apiGroup: rbac.authorization.k8s.io}]
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].GetKind() != "Namespace" || objs[1].GetName() != "admins" {
		t.Fatalf("got %d objects", len(objs))
	}
}

func TestParseNamesTheDocumentAndField(t *testing.T) {
	cases := map[string]string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n": "document 2: field apiVersion",
		"apiVersion: v1\nmetadata: {name: a}\n":           "document 1: field kind",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n": "field metadata.name",
		"apiVersion: v1\nkind: [\n":                       "document 1",
	}
	for in, want := range cases {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error %v, want it to mention %q", in, err, want)
		}
	}
}

// A binding to an aggregated ClusterRole grants nothing until the
// controller-manager fills the role: the real node story saw `kubectl get
// ns` forbidden right after a cluster was Ready, its view role still empty.
func TestABindingToAnEmptyAggregatedRoleIsNotYetAccess(t *testing.T) {
	objs, err := Parse(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: warren-access-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: team-a, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: warren-access-edit}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects: [{kind: Group, name: team-a, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: own, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: custom}
subjects: [{kind: Group, name: team-a, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-binding, namespace: default}
`)
	if err != nil {
		t.Fatal(err)
	}
	roles := grantedRoles(objs)
	if !slices.Equal(roles, []string{"view", "edit", "custom"}) {
		t.Fatalf("granted roles %v, want view, edit, custom", roles)
	}
	aggregated := &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"x": "true"}}}}
	view := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view"}, AggregationRule: aggregated}
	edit := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edit"}, AggregationRule: aggregated,
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}
	c := fake.NewClientBuilder().WithObjects(view, edit).Build()
	ctx := context.Background()
	unfilled, err := unfilledRoles(ctx, c, roles)
	if err != nil || !slices.Equal(unfilled, []string{"view", "custom"}) {
		t.Fatalf("unfilled %v (%v), want view (aggregated, empty) and custom (missing)", unfilled, err)
	}
	view.Rules = edit.Rules
	if err := c.Update(ctx, view); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "custom"}}); err != nil {
		t.Fatal(err)
	}
	if unfilled, err := unfilledRoles(ctx, c, roles); err != nil || len(unfilled) != 0 {
		t.Fatalf("unfilled %v (%v) once every role is filled or exists unaggregated", unfilled, err)
	}
}
