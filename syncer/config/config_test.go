package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestFlagsWithDownwardAPINamespace(t *testing.T) {
	c, err := Parse([]string{"--name=demo", "--pod-security=restricted", "--sync-load-balancers=true"}, func(k string) string {
		if k == "POD_NAMESPACE" {
			return "vc-demo"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.HostNamespace != "vc-demo" || c.PodSecurity != "restricted" || c.Nodes != NodesFake {
		t.Fatalf("got %+v", c)
	}
	if !c.SyncLoadBalancers || c.SyncNodePorts || c.SyncIngresses {
		t.Fatalf("sync switches: load balancers %v (set), node ports %v and ingresses %v (default off)", c.SyncLoadBalancers, c.SyncNodePorts, c.SyncIngresses)
	}
	if c.ServiceName != "demo" || c.InitManifests != "demo-init-manifests" || c.KubeconfigSecret != "demo-kubeconfig" {
		t.Fatalf("derived names wrong: %+v", c)
	}
}

func TestConfigFileFillsWhatFlagsLeaveOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "syncer.yaml")
	file := "name: from-file\nhost-namespace: vc-file\nsync-ingresses: true\nsync-node-ports: true\nhost-qps: 7.5\nnodes: real\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]string{"--config=" + path, "--name=from-flag"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-flag" {
		t.Errorf("flag must win: name = %q", c.Name)
	}
	if c.HostNamespace != "vc-file" || !c.SyncIngresses || !c.SyncNodePorts || c.SyncLoadBalancers || c.HostQPS != 7.5 || c.Nodes != NodesReal {
		t.Errorf("file values not applied: %+v", c)
	}
}

func TestBadInputNamesFileFieldAndReason(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--host-namespace=x"}, []string{"--name", "required"}},
		{[]string{"--name=a", "--host-namespace=x", "--nodes=maybe"}, []string{"--nodes", "maybe"}},
		{[]string{"--name=a", "--host-namespace=x", "--pod-security=privileged"}, []string{"--pod-security", "privileged"}},
		{[]string{"--config=" + write("unknown.yaml", "nmae: a\n")}, []string{"unknown.yaml", "nmae", "unknown setting"}},
		{[]string{"--config=" + write("type.yaml", "name: [a]\n")}, []string{"type.yaml", "\"name\""}},
		{[]string{"--config=" + write("value.yaml", "host-qps: fast\n")}, []string{"value.yaml", "host-qps"}},
		{[]string{"--config=" + write("switch.yaml", "sync-node-ports: maybe\n")}, []string{"switch.yaml", "sync-node-ports"}},
		{[]string{"--name=a", "--host-namespace=x", "--sync-load-balancers=perhaps"}, []string{"sync-load-balancers", "perhaps"}},
	}
	for _, c := range cases {
		_, err := Parse(c.args, noEnv)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", c.args, err, w)
			}
		}
	}
}
