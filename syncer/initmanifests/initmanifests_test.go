package initmanifests

import (
	"strings"
	"testing"
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
