package render_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/warren-dev/warren/reconciler/render"
	"github.com/warren-dev/warren/test/fleettest"
)

// flagValue is the value of --name=value (or, for k3s, of
// --kube-apiserver-arg=name=value) in args.
func flagValue(args []string, prefix, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, prefix+name+"="); ok {
			return v
		}
	}
	return ""
}

// On both distros the virtual API server calls the syncer for the kubelet
// API (kubectl logs, exec, attach, port-forward): it prefers the InternalIP
// the virtual nodes advertise, presents the client certificate the syncer
// accepts, and checks the syncer's serving certificate against the cluster's
// server CA; an init container of the syncer image issues both from the
// cluster's PKI before either starts.
func TestTheVirtualAPIServerCallsTheSyncersKubeletAPIOnBothDistros(t *testing.T) {
	root := t.TempDir()
	fleettest.Write(t, root, everyOption)
	outs := renderDir(t, root, render.Options{})
	for _, c := range []struct {
		cluster, apiserver, prefix, serverCA, bootstrap string
	}{
		{"a", "k3s", "--kube-apiserver-arg=", "/data/server/tls/server-ca.crt", "kubelet-pki"},
		{"b", "kube-apiserver", "--", "/pki/server-ca.crt", "pki"},
	} {
		t.Run(c.apiserver, func(t *testing.T) {
			out := outs[0]
			if c.cluster == "b" {
				out = outs[1]
			}
			sts := find(out.Objects, "StatefulSet", c.cluster)
			api, syncer := args(container(t, sts, c.apiserver)), args(container(t, sts, "syncer"))
			if got := flagValue(api, c.prefix, "kubelet-preferred-address-types"); got != "InternalIP" {
				t.Errorf("kubelet-preferred-address-types %q", got)
			}
			if got := flagValue(api, c.prefix, "kubelet-certificate-authority"); got != c.serverCA {
				t.Errorf("kubelet-certificate-authority %q, want the server CA %s", got, c.serverCA)
			}
			clientCert := flagValue(api, c.prefix, "kubelet-client-certificate")
			if clientCert == "" || flagValue(api, c.prefix, "kubelet-client-key") == "" {
				t.Fatalf("no kubelet client certificate in %v", api)
			}
			if got := flagValue(syncer, "--", "kubelet-client-cert-file"); got != clientCert {
				t.Errorf("the syncer accepts %q, the API server presents %q", got, clientCert)
			}
			if got := flagValue(syncer, "--", "kubelet-address"); got != "127.0.0.1:10250" {
				t.Errorf("kubelet address %q: want loopback, which the pod's containers share", got)
			}
			for _, f := range []string{"kubelet-tls-cert-file", "kubelet-tls-key-file", "kubelet-client-ca-file"} {
				if v := flagValue(syncer, "--", f); !strings.HasPrefix(v, "/data/pki/") {
					t.Errorf("syncer --%s=%q: want a file the init container writes", f, v)
				}
			}
			boot := container(t, sts, c.bootstrap)
			if img, _ := boot["image"].(string); !strings.HasPrefix(img, "ghcr.io/warren-dev/warren-syncer") {
				t.Errorf("init container %s runs %s, want the syncer image", c.bootstrap, img)
			}
			if a := args(boot); !slices.Contains(a, "bootstrap-pki") || !slices.Contains(a, "--out-dir=/data/pki") {
				t.Errorf("init container %s args %v", c.bootstrap, a)
			}
			inits, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "initContainers")
			if !hasContainer(inits, c.bootstrap) {
				t.Errorf("%s is not an init container", c.bootstrap)
			}
		})
	}
}

// The syncer's host Role gains exactly the subresources it relays, in its
// own namespace (no ClusterRole names one): reading logs, and the three streaming ones.
func TestTheSyncerRoleHasTheRelayedSubresourcesOnly(t *testing.T) {
	outs := renderDir(t, exampleFleet, render.Options{})
	role := find(outs[0].Objects, "Role", outs[0].Cluster+"-syncer")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	got := map[string][]string{}
	for _, r := range rules {
		rule := r.(map[string]any)
		var verbs []string
		for _, v := range rule["verbs"].([]any) {
			verbs = append(verbs, v.(string))
		}
		for _, res := range rule["resources"].([]any) {
			if strings.Contains(res.(string), "/") {
				got[res.(string)] = verbs
			}
		}
	}
	want := map[string][]string{
		"pods/log": {"get"}, "pods/exec": {"get", "create"}, "pods/attach": {"get", "create"}, "pods/portforward": {"get", "create"},
	}
	if len(got) != len(want) {
		t.Errorf("subresources %v, want %v", got, want)
	}
	for res, verbs := range want {
		if !slices.Equal(got[res], verbs) {
			t.Errorf("%s: verbs %v, want %v", res, got[res], verbs)
		}
	}
	for _, out := range outs {
		for _, o := range out.Objects {
			if o.GetKind() == "ClusterRole" && strings.Contains(stringOf(o), "pods/") {
				t.Errorf("cluster-wide role %s names a pod subresource", o.GetName())
			}
		}
	}
}

func stringOf(o *unstructured.Unstructured) string {
	b, _ := o.MarshalJSON()
	return string(b)
}
