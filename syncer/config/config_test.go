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

func TestWorkloadFlagsDefaultToDeny(t *testing.T) {
	c, err := Parse([]string{"--name=a", "--host-namespace=x"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Workloads
	if len(w.StorageClasses) > 0 || w.AllowStaticBinding || len(w.NodeSelector) > 0 || len(w.Tolerations) > 0 ||
		len(w.IngressHosts) > 0 || len(w.IngressClasses) > 0 || len(w.IngressAnnotations) > 0 || len(w.PodAnnotations) > 0 || len(w.EndpointCIDRs) > 0 {
		t.Fatalf("defaults allow something: %+v", w)
	}
	if w.PodAnnotations.Allows("k8s.v1.cni.cncf.io/networks") || w.IngressHosts.Allows("x.example.com") {
		t.Fatal("empty lists allow")
	}
}

func TestWorkloadFlagsFromFlagsAndFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "syncer.yaml")
	file := `name: a
host-namespace: x
storage-classes: [fast, slow]
node-selector: {pool: tenants}
tolerations:
- {key: dedicated, operator: Equal, value: tenants, effect: NoSchedule}
pod-annotations: [prometheus.io/*]
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]string{"--config=" + path, "--allow-static-binding", "--ingress-hosts=*.apps.example.com,shop.example.com",
		"--ingress-classes=public", "--ingress-annotations=nginx.ingress.kubernetes.io/ssl-redirect", "--endpoint-cidrs=192.0.2.0/24,2001:db8::/32"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Workloads
	if strings.Join(w.StorageClasses, ",") != "fast,slow" || !w.AllowStaticBinding || w.NodeSelector["pool"] != "tenants" ||
		len(w.Tolerations) != 1 || w.Tolerations[0].Value != "tenants" || len(w.EndpointCIDRs) != 2 || w.IngressClasses[0] != "public" {
		t.Fatalf("got %+v", w)
	}
	for key, want := range map[string]bool{"prometheus.io/scrape": true, "prometheus.io": false, "x.prometheus.io/scrape": false, "k8s.v1.cni.cncf.io/networks": false} {
		if w.PodAnnotations.Allows(key) != want {
			t.Errorf("pod annotation %q allowed = %v", key, !want)
		}
	}
	if !w.IngressAnnotations.Allows("nginx.ingress.kubernetes.io/ssl-redirect") || w.IngressAnnotations.Allows("nginx.ingress.kubernetes.io/auth-url") {
		t.Error("ingress annotation allowlist wrong")
	}
	for host, want := range map[string]bool{"a.apps.example.com": true, "*.apps.example.com": true, "SHOP.example.com": true,
		"apps.example.com": false, "other.example.com": false, "": false, "*.example.com": false} {
		if w.IngressHosts.Allows(host) != want {
			t.Errorf("ingress host %q allowed = %v", host, !want)
		}
	}
}

func TestBadWorkloadFlagsSayWhich(t *testing.T) {
	base := []string{"--name=a", "--host-namespace=x"}
	for flag, want := range map[string]string{
		"--tolerations=[{":                     "--tolerations",
		`--tolerations=[{"operator":"Maybe"}]`: "operator",
		`--tolerations=[{"operator":"Equal"}]`: "empty key",
		"--node-selector=bad key=v":            "--node-selector",
		"--endpoint-cidrs=10.0.0.0/33":         "--endpoint-cidrs",
		"--ingress-hosts=[":                    "--ingress-hosts",
		"--pod-annotations=not a key":          "--pod-annotations",
		"--ingress-annotations=-bad-/*":        "--ingress-annotations",
		"--storage-classes=Not_A_Class":        "--storage-classes",
	} {
		_, err := Parse(append(base, flag), noEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one mentioning %q", flag, err, want)
		}
	}
}
