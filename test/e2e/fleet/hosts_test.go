package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/internal/cli"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/test/fleettest"
	"github.com/warren-dev/warren/test/gitserver"
	"github.com/warren-dev/warren/test/localkube"
	"github.com/warren-dev/warren/test/testkit"
)

// eastServiceCIDR and eastNodePorts are the second host's ranges, unlike
// the shared host's, so the stories see each cluster rendered for its own.
const (
	eastServiceCIDR = "10.112.0.0/16"
	eastNodePorts   = "31000-31999"
)

// hostsPolicy lets tenant hosts place clusters on east besides local, and
// copy kubeconfigs into the namespace tenants.
const hostsPolicy = `apiVersion: warren.dev/v1alpha1
kind: TenantPolicy
metadata:
  name: hosts
spec:
  tenant: hosts
  maxClusters: 5
  hosts: [east]
  kubeconfigNamespaces: [tenants]
`

// hostsCluster is a definition of tenant hosts on host (none: the
// Fleet's default) asking for a kubeconfig, with its quota's cpu.
func hostsCluster(name, host, cpu string) string {
	extra := []string{"kubeconfig: {namespace: tenants, name: " + name + "}"}
	if host != "" {
		extra = append(extra, "host: "+host)
	}
	return clusterYAML(name, "hosts", cpu, extra...)
}

// A platform team connects a second host, east, through a HostCluster and
// a kubeconfig Secret, and one fleet places a cluster on each host. East
// then stops answering and comes back; last, a tenant asks for a host its
// policy does not allow. One reconciler, the shared host and one east
// plane serve every step.
func TestClustersOnTwoHosts(t *testing.T) {
	t.Parallel()
	plane := hostPlane(t)
	h := newHost(t, plane)
	east := localkube.ForTest(t, localkube.Options{ControllerManager: true, Scheduler: true, Nodes: 1, ServiceCIDR: eastServiceCIDR, NodePortRange: eastNodePorts})
	eh := newHost(t, east)
	const ns = "e2e-hosts"
	repo := gitserver.NewRepo(t, t.TempDir(), "hosts")
	sha := repo.CommitFiles(t, "a cluster on each host", map[string]string{
		"policies/hosts.yaml":    hostsPolicy,
		clusterFile("hosts-loc"): hostsCluster("hosts-loc", "", "1"),
		clusterFile("hosts-est"): hostsCluster("hosts-est", "east", "1"),
		clusterFile("hosts-old"): clusterYAML("hosts-old", "hosts", "1", "host: east"),
	})
	connectEast(t, h, ns, east.Config)
	reconciler := startReconciler(t, plane, reconcilerOptions{})
	fleet := h.createFleet(ns, fleetSpec{url: repo.FileURL(), interval: time.Hour})
	publishKubeconfigs(t, h, fleet)

	var before map[string]string // east's objects (kind/ns/name → UID) before it stops
	var eastCPU string           // east's cluster's quota before it stops
	t.Run("1 each cluster's objects are on its own host only, Host shown, kubeconfigs published", func(t *testing.T) {
		h := newHost(t, plane)
		h.waitFleetApplied(fleet, sha, 3*time.Minute)
		h.waitClustersReady(2*time.Minute, "hosts-loc", "hosts-est", "hosts-old")
		for _, c := range []struct {
			cluster string
			on, off *host
		}{{"hosts-loc", h, eh}, {"hosts-est", eh, h}} {
			cluster, on, off := c.cluster, c.on, c.off
			if objs := on.sweep(v1alpha1.ClusterLabel + "=" + cluster); len(objs) < len(renderedKinds) {
				t.Errorf("cluster %s has %d objects on its host: %v", cluster, len(objs), keys(objs))
			}
			if objs := hostObjects(off.sweep(v1alpha1.ClusterLabel + "=" + cluster)); len(objs) > 0 {
				t.Errorf("cluster %s has objects on the other host: %v", cluster, objs)
			}
		}
		sts, err := eh.kube.AppsV1().StatefulSets("vc-hosts-est").Get(context.Background(), "hosts-est", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if k3s := containerArgs(sts.Spec.Template.Spec.Containers, "k3s"); !slices.Contains(k3s, "--service-cidr="+eastServiceCIDR) ||
			!slices.Contains(k3s, "--service-node-port-range="+eastNodePorts) {
			t.Errorf("east's cluster runs k3s with %v, want east's service CIDR %s and node ports %s", k3s, eastServiceCIDR, eastNodePorts)
		}
		if len(sts.OwnerReferences) != 0 {
			t.Errorf("east's StatefulSet has owners %v: east's garbage collector would delete it", sts.OwnerReferences)
		}
		var hc v1alpha1.HostCluster
		if err := h.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "east"}, &hc); err != nil {
			t.Fatal(err)
		}
		if !conditions.IsReady(&hc) || hc.Status.ServiceCIDR != eastServiceCIDR || hc.Status.NodePortRange != eastNodePorts || hc.Status.ServerVersion == "" {
			t.Errorf("HostCluster east: %+v", hc.Status)
		}
		table := kubectl(t, plane, "get", "virtualclusters", "hosts-loc", "hosts-est")
		for _, want := range []string{"HOST", "hosts-loc .*local", "hosts-est .*east"} {
			if !matches(table, want) {
				t.Errorf("kubectl get virtualclusters does not show %q:\n%s", want, table)
			}
		}
		waitPublished(t, h, repo, "hosts-loc", "hosts-est")
		before = uidsOf(eh.sweep(v1alpha1.ClusterLabel + "=hosts-est"))
		eastCPU = quotaCPU(t, eh, "hosts-est")
	})

	t.Run("2 east stops: its cluster stays as last applied, the local one goes on, the Fleet names east", func(t *testing.T) {
		h := newHost(t, plane)
		if err := east.Kill("kube-apiserver"); err != nil {
			t.Fatal(err)
		}
		localBefore := uidsOf(h.sweep(v1alpha1.ClusterLabel + "=hosts-loc"))
		localCPU := quotaCPU(t, h, "hosts-loc")
		repo.Pull(t) // warren's kubeconfig commits
		repo.Git(t, "rm", "--quiet", "--", clusterFile("hosts-old"))
		sha2 := repo.CommitFiles(t, "more cpu for both, hosts-old removed", map[string]string{
			clusterFile("hosts-loc"): hostsCluster("hosts-loc", "", "2"),
			clusterFile("hosts-est"): hostsCluster("hosts-est", "east", "2"),
		})
		h.annotate(fleet)
		testkit.Eventually(t, 2*time.Minute, "the Fleet to say east is unreachable", func() (bool, string) {
			f := h.fleet(fleet)
			return conditions.GetReason(f, meta.ReadyCondition) == v1alpha1.HostUnreachableReason &&
				strings.HasSuffix(f.Status.LastAttemptedRevision, sha2), fleetState(f)
		})
		if msg := conditions.GetMessage(h.fleet(fleet), meta.ReadyCondition); !strings.Contains(msg, "host east is unreachable") || !strings.Contains(msg, "hosts-est") {
			t.Errorf("the Fleet's Ready condition does not name east and its cluster: %q", msg)
		}
		testkit.Eventually(t, time.Minute, "the local cluster's quota changed from "+localCPU, func() (bool, string) {
			cpu := quotaCPU(t, h, "hosts-loc")
			return cpu != "" && cpu != localCPU, cpu
		})
		if vc, _ := h.virtualCluster("hosts-est"); condition(vc, v1alpha1.AppliedCondition).Reason != v1alpha1.HostUnreachableReason {
			t.Errorf("east's cluster: %s", clusterState(vc))
		}
		if vc, ok := h.virtualCluster("hosts-old"); !ok || !strings.Contains(condition(vc, v1alpha1.AdmittedCondition).Message, "host east is unreachable: pruned once it answers") {
			t.Errorf("hosts-old, removed from Git while east is down, is not kept until east answers: %v", ok)
		}
		if gone := missing(localBefore, uidsOf(h.sweep(v1alpha1.ClusterLabel+"=hosts-loc"))); len(gone) > 0 {
			t.Errorf("local objects deleted or replaced while east was down: %v", gone)
		}
	})

	t.Run("3 east comes back: it converges with nothing pruned and nothing duplicated", func(t *testing.T) {
		h := newHost(t, plane)
		if err := east.Revive(context.Background(), "kube-apiserver"); err != nil {
			t.Fatal(err)
		}
		h.annotate(fleet)
		eh := newHost(t, east)
		testkit.Eventually(t, 2*time.Minute, "the Fleet Ready with east's quota changed from "+eastCPU, func() (bool, string) {
			f := h.fleet(fleet)
			return conditions.IsReady(f) && f.Status.LastAppliedRevision == f.Status.LastAttemptedRevision &&
				quotaCPU(t, eh, "hosts-est") != "" && quotaCPU(t, eh, "hosts-est") != eastCPU, fleetState(f)
		})
		after := uidsOf(eh.sweep(v1alpha1.ClusterLabel + "=hosts-est"))
		if gone := missing(before, after); len(gone) > 0 {
			t.Errorf("east's objects deleted or replaced: %v", gone)
		}
		if added := missing(after, before); len(added) > 0 {
			t.Errorf("east holds objects it did not have before: %v", added)
		}
		if objs := hostObjects(eh.sweep(v1alpha1.ClusterLabel + "=hosts-old")); len(objs) > 0 {
			t.Errorf("hosts-old, removed while east was down, still has objects on east: %v", objs)
		}
		if _, ok := h.virtualCluster("hosts-old"); ok {
			t.Error("hosts-old's VirtualCluster was not pruned once east answered")
		}
		repo.Pull(t)
		if file := repo.Show(t, "main", "kubeconfigs/hosts-est.yaml"); !strings.Contains(file, "kind: SealedSecret") {
			t.Errorf("east's kubeconfig left Git while east was down:\n%s", file)
		}
	})

	t.Run("4 a host the tenant's policy does not allow is refused by validate and the reconciler", func(t *testing.T) {
		h := newHost(t, plane)
		file := clusterFile("hosts-wst")
		const want = `clusters/hosts-wst.yaml:11: spec.host: policy "hosts": host "west" is not allowed (allowed: local, east)`
		checkout := t.TempDir()
		fleettest.Write(t, checkout, fleettest.Files{"policies/hosts.yaml": hostsPolicy, file: hostsCluster("hosts-wst", "west", "1")})
		var stdout, stderr bytes.Buffer
		if code := cli.Main([]string{"validate", checkout}, &stdout, &stderr); code != 1 || strings.TrimSpace(stdout.String()) != want {
			t.Errorf("warren validate: exit %d\n%s%s\nwant exit 1 and %s", code, stdout.String(), stderr.String(), want)
		}
		repo.Pull(t) // warren's kubeconfig commits
		sha4 := repo.CommitFiles(t, "a cluster on west", map[string]string{file: hostsCluster("hosts-wst", "west", "1")})
		h.annotate(fleet)
		testkit.Eventually(t, time.Minute, "the Fleet to refuse west", func() (bool, string) {
			f := h.fleet(fleet)
			return strings.HasSuffix(f.Status.LastAttemptedRevision, sha4) && conditions.GetReason(f, meta.ReadyCondition) == v1alpha1.ValidationFailedReason, fleetState(f)
		})
		if msg := conditions.GetMessage(h.fleet(fleet), meta.ReadyCondition); !strings.Contains(msg, want) {
			t.Errorf("the Fleet's Ready condition does not say %q: %q", want, msg)
		}
		if _, ok := h.virtualCluster("hosts-wst"); ok {
			t.Error("a VirtualCluster was made for the refused cluster")
		}
		for _, on := range []*host{h, newHost(t, east)} {
			if objs := hostObjects(on.sweep(v1alpha1.ClusterLabel + "=hosts-wst")); len(objs) > 0 {
				t.Errorf("objects applied for the refused cluster: %v", objs)
			}
		}
		noCredentialsIn(t, reconciler.logPath, east.Config)
	})

	t.Run("5 the Fleet deleted while east is down: it waits naming east, then leaves nothing on either host", func(t *testing.T) {
		h := newHost(t, plane)
		if err := east.Kill("kube-apiserver"); err != nil {
			t.Fatal(err)
		}
		f := h.fleet(fleet)
		if err := h.c.Delete(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 2*time.Minute, "the Fleet's deletion to wait on east", func() (bool, string) {
			f := h.fleet(fleet)
			return conditions.GetReason(f, meta.ReadyCondition) == meta.PruneFailedReason &&
				strings.Contains(conditions.GetMessage(f, meta.ReadyCondition), "(east)"), fleetState(f)
		})
		// The reachable host is cleaned up meanwhile.
		testkit.Eventually(t, deletionBound, "the local cluster's objects gone", func() (bool, string) {
			objs := hostObjects(h.sweep(v1alpha1.ClusterLabel + "=hosts-loc"))
			return len(objs) == 0, fmt.Sprint(objs)
		})
		if err := east.Revive(context.Background(), "kube-apiserver"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, deletionBound, "the Fleet gone once east answers", func() (bool, string) {
			var live v1alpha1.Fleet
			err := h.c.Get(context.Background(), fleet, &live)
			if apierrors.IsNotFound(err) {
				return true, ""
			}
			return false, fmt.Sprint(err, fleetState(&live))
		})
		eh := newHost(t, east)
		for _, cluster := range []string{"hosts-loc", "hosts-est"} {
			for _, on := range []*host{h, eh} {
				if objs := on.sweep(v1alpha1.ClusterLabel + "=" + cluster); len(objs) > 0 {
					t.Errorf("cluster %s left objects behind: %v", cluster, keys(objs))
				}
			}
		}
	})
}

// connectEast makes the Fleet's namespace, a kubeconfig Secret for the
// plane cfg reaches (its certificates inline, as a HostCluster needs) and
// the HostCluster east naming it, checked every two seconds.
func connectEast(t *testing.T, h *host, ns string, cfg *rest.Config) {
	t.Helper()
	ctx := context.Background()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["east"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["warren"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts["east"] = &clientcmdapi.Context{Cluster: "east", AuthInfo: "warren"}
	kc.CurrentContext = "east"
	raw, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenants"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "east-kubeconfig"}, Data: map[string][]byte{"value": raw}},
		&v1alpha1.HostCluster{
			// Checked by the story's own shard, as its Fleet is.
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "east", Labels: map[string]string{v1alpha1.ShardingKeyLabel: storyShard(t)}},
			Spec: v1alpha1.HostClusterSpec{
				KubeConfig: v1alpha1.HostKubeConfig{SecretRef: meta.SecretKeyReference{Name: "east-kubeconfig"}},
				Interval:   &metav1.Duration{Duration: 2 * time.Second},
			},
		},
	} {
		if err := h.c.Create(ctx, obj); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
}

// publishKubeconfigs has the Fleet publish kubeconfigs sealed with a
// certificate kept in a ConfigMap of its namespace.
func publishKubeconfigs(t *testing.T, h *host, fleet client.ObjectKey) {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: fleet.Namespace, Name: "sealing"}, Data: map[string]string{"cert.pem": sealingCertificate(t)}}
	if err := h.c.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	f := h.fleet(fleet)
	before := f.DeepCopy()
	f.Spec.Kubeconfigs = &v1alpha1.KubeconfigPublishing{Sealing: v1alpha1.SealingSource{ConfigMap: &v1alpha1.SealingCertificateRef{Name: "sealing"}}}
	if err := h.c.Patch(ctx, f, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

// sealingCertificate is a self-signed RSA certificate, as the
// sealed-secrets controller publishes.
func sealingCertificate(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealed-secret"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// waitPublished waits until each cluster's sealed kubeconfig is in Git and
// its KubeconfigPublished condition says so.
func waitPublished(t *testing.T, h *host, repo *gitserver.Repo, names ...string) {
	t.Helper()
	testkit.Eventually(t, 2*time.Minute, "kubeconfigs published", func() (bool, string) {
		var waiting []string
		for _, n := range names {
			vc, ok := h.virtualCluster(n)
			if !ok || !conditions.IsTrue(vc, v1alpha1.KubeconfigPublishedCondition) {
				waiting = append(waiting, n+": "+clusterState(vc))
			}
		}
		return len(waiting) == 0, strings.Join(waiting, " | ")
	})
	for _, n := range names {
		if file := repo.Show(t, "main", "kubeconfigs/"+n+".yaml"); !strings.Contains(file, "kind: SealedSecret") {
			t.Errorf("kubeconfigs/%s.yaml in Git is not a SealedSecret:\n%s", n, file)
		}
	}
}

// kubectl runs the tools' kubectl against the plane and returns its output.
func kubectl(t *testing.T, p *localkube.Plane, args ...string) string {
	t.Helper()
	bin, err := localkube.Tool("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig=" + p.KubeconfigPath}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// noCredentialsIn fails the test if the reconciler's log holds any part of
// the east kubeconfig's client key, as PEM or as the Secret's base64.
func noCredentialsIn(t *testing.T, logPath string, cfg *rest.Config) {
	t.Helper()
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cfg.KeyData)
	if block == nil {
		t.Fatal("east's client key is not PEM")
	}
	body := base64.StdEncoding.EncodeToString(block.Bytes)
	for _, secret := range []string{body[20:60], base64.StdEncoding.EncodeToString(cfg.KeyData)[20:60], "PRIVATE KEY"} {
		if bytes.Contains(log, []byte(secret)) {
			t.Errorf("the reconciler's log holds east's credentials (%q)", secret)
		}
	}
}

// uidsOf maps the swept objects warren applied to their UIDs.
func uidsOf(objs map[string]hostObject) map[string]string {
	out := map[string]string{}
	for k, o := range objs {
		if slices.Contains(o.Managers, "warren") {
			out[k] = string(o.UID)
		}
	}
	return out
}

// hostObjects are the swept objects but the VirtualCluster, which is
// warren's record on its own host, not a host object of the cluster.
func hostObjects(objs map[string]hostObject) []string {
	var out []string
	for k, o := range objs {
		if o.Resource.Resource != "virtualclusters" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// matches reports whether some line of out matches pattern.
func matches(out, pattern string) bool {
	re := regexp.MustCompile(pattern)
	for _, line := range strings.Split(out, "\n") {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// quotaCPU is the CPU a cluster's quota holds on a host ("" when it
// cannot be read: a host that does not answer).
func quotaCPU(t *testing.T, on *host, cluster string) string {
	t.Helper()
	q, err := on.kube.CoreV1().ResourceQuotas("vc-"+cluster).Get(context.Background(), cluster, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	cpu := q.Spec.Hard[corev1.ResourceRequestsCPU]
	return cpu.String()
}

// missing are the keys of a whose UID b does not have.
func missing(a, b map[string]string) []string {
	var out []string
	for k, uid := range a {
		if b[k] != uid {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
