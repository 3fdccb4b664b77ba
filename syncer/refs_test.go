package syncer

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/warren-dev/warren/syncer/translate"
)

// A reference is written to the host only when the host object of its
// translated name is free or is the twin of exactly that virtual object.
func TestHostRefChecksTheTwinsOrigin(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	twin := func(kind, ns, name string, obj client.Object) client.Object {
		obj.SetName(names.HostName(ns, name))
		obj.SetNamespace("vc-demo")
		names.Mark(obj, translate.Origin{Kind: kind, Namespace: ns, Name: name})
		return obj
	}
	// A Secret named like the twin of shop/db but marked as team/other's
	// (as a non-injective translation would have allowed), a ConfigMap
	// twin of shop/db (another kind), and a foreign Secret outside the
	// syncer's cache with the name of shop/foreign.
	forged := twin("Secret", "team", "other", &corev1.Secret{})
	forged.SetName(names.HostName("shop", "db"))
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: names.HostName("shop", "foreign"), Namespace: "vc-demo"}}
	cache := fake.NewClientBuilder().WithObjects(forged, twin("ConfigMap", "shop", "settings", &corev1.ConfigMap{}),
		twin("Secret", "shop", "tls", &corev1.Secret{})).Build()
	live := fake.NewClientBuilder().WithObjects(foreign).Build()
	p := &Pair{Names: names, Host: cache, HostReader: live}

	cases := []struct {
		ref  Ref
		fail bool
	}{
		{Ref{Kind: "Secret", Namespace: "shop", Name: "tls", Field: "spec.tls[0]"}, false},
		{Ref{Kind: "Secret", Namespace: "shop", Name: "missing", Field: "spec.volumes[0]"}, false},
		{Ref{Kind: "Secret", Namespace: "shop", Name: "db", Field: "spec.volumes[1].secret"}, true},
		{Ref{Kind: "Secret", Namespace: "shop", Name: "foreign", Field: "spec.imagePullSecrets[0]"}, true},
		{Ref{Kind: "Secret", Namespace: "shop", Name: "settings", Field: "spec.volumes[2].secret"}, false}, // the ConfigMap twin is another object
		{Ref{Kind: "Node", Namespace: "", Name: "n", Field: "spec.x"}, true},
	}
	for _, c := range cases {
		name, err := p.HostRef(t.Context(), c.ref)
		if (err != nil) != c.fail {
			t.Errorf("%+v: err %v, want failure %v", c.ref, err, c.fail)
			continue
		}
		if err == nil && name != names.HostName(c.ref.Namespace, c.ref.Name) {
			t.Errorf("%+v: host name %q", c.ref, name)
		}
		if c.fail && c.ref.Kind == "Secret" && (RefReason(err) == "" || !strings.Contains(RefReason(err), c.ref.Field)) {
			t.Errorf("%+v: reason %q does not name the field", c.ref, RefReason(err))
		}
	}
}
