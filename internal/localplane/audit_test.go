package localplane

import (
	"os"
	"path/filepath"
	"testing"
)

// Events in the shape kube-apiserver writes them (audit.k8s.io/v1): an impersonated
// server-side apply dry run, and a status update; a RequestReceived stage,
// a read, an event without an object and a line not yet written in full
// are skipped.
const auditSample = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/bitnami.com/v1alpha1/namespaces/team-a/sealedsecrets/alpha-kubeconfig?dryRun=All\u0026fieldManager=kustomize-controller\u0026force=true","verb":"patch","user":{"username":"system:admin","groups":["system:masters"]},"impersonatedUser":{"username":"system:serviceaccount:flux-system:kustomize-controller"},"userAgent":"kustomize-controller/v1.9.6","objectRef":{"resource":"sealedsecrets","namespace":"team-a","name":"alpha-kubeconfig","apiGroup":"bitnami.com","apiVersion":"v1alpha1"},"responseStatus":{"metadata":{},"code":200}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"RequestReceived","requestURI":"/apis/warren.dev/v1alpha1/virtualclusters/alpha/status","verb":"update","user":{"username":"x"},"objectRef":{"resource":"virtualclusters","name":"alpha","apiGroup":"warren.dev","subresource":"status"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/warren.dev/v1alpha1/virtualclusters/alpha/status?fieldManager=warren","verb":"update","user":{"username":"system:serviceaccount:warren-system:warren-reconciler"},"userAgent":"warren","objectRef":{"resource":"virtualclusters","name":"alpha","apiGroup":"warren.dev","subresource":"status"},"responseStatus":{"code":409}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces","verb":"deletecollection","user":{"username":"x"}}
{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/secrets/x","verb":"get","user":{"username":"x"},"objectRef":{"resource":"secrets","namespace":"team-a","name":"x","apiVersion":"v1"},"responseStatus":{"code":200}}
`

func TestAuditWritesReadsWhoWroteWhatWithWhichFieldManager(t *testing.T) {
	p := &Plane{AuditLogPath: filepath.Join(t.TempDir(), "audit.log")}
	// The API server is still writing the last line.
	partial := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/secrets/x","verb":"delete","user":{"use`
	if err := os.WriteFile(p.AuditLogPath, []byte(auditSample+partial), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := p.AuditWrites()
	if err != nil {
		t.Fatal(err)
	}
	want := []AuditWrite{
		{User: "system:serviceaccount:flux-system:kustomize-controller", UserAgent: "kustomize-controller/v1.9.6", Verb: "patch",
			FieldManager: "kustomize-controller", DryRun: true, Code: 200,
			Group: "bitnami.com", Resource: "sealedsecrets", Namespace: "team-a", Name: "alpha-kubeconfig"},
		{User: "system:serviceaccount:warren-system:warren-reconciler", UserAgent: "warren", Verb: "update",
			FieldManager: "warren", Code: 409, Group: "warren.dev", Resource: "virtualclusters", Subresource: "status", Name: "alpha"},
	}
	if len(got) != len(want) {
		t.Fatalf("read %d writes, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("write %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if s := got[1].Object(); s != "warren.dev/virtualclusters/status /alpha" {
		t.Errorf("Object() = %q", s)
	}
	if _, err := (&Plane{}).AuditWrites(); err == nil {
		t.Error("a plane without an audit log read one")
	}
}
