package pods

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

var names = translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}

func tenantPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "u-1",
			Labels: map[string]string{"app": "web", v1alpha1.ClusterLabel: "forged"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "builder",
			PriorityClassName:  "tenant-high",
			Tolerations: []corev1.Toleration{
				{Operator: corev1.TolerationOpExists},
				{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists},
				{Key: "dedicated", Value: "web", Operator: corev1.TolerationOpEqual},
			},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx",
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "pw"}}},
				},
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
			}},
			Volumes: []corev1.Volume{
				{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}}},
				}}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
			},
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			}}}},
		},
	}
}

func TestAHostPodReferencesOnlyTranslatedObjects(t *testing.T) {
	env := Env{Names: names, DNSServer: "10.96.0.10", APIHost: "10.96.5.5", ClusterDomain: "cluster.local",
		Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "db-main", Namespace: "shop"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.3.3", Ports: []corev1.ServicePort{{Name: "pg", Port: 5432, Protocol: corev1.ProtocolTCP}}}}}}
	h := HostPod(tenantPod(), env)

	if h.Name != "web-0-x-shop-x-demo" || h.Namespace != "vc-demo" {
		t.Fatalf("host identity %s/%s", h.Namespace, h.Name)
	}
	if o, ok := names.OriginOf(h); !ok || o.Name != "web-0" || o.Namespace != "shop" || o.UID != "u-1" {
		t.Fatalf("origin %+v %v", o, ok)
	}
	if h.Labels[v1alpha1.ClusterLabel] != "demo" || h.Labels["app"] != "web" {
		t.Errorf("labels %v", h.Labels)
	}
	s := h.Spec
	if s.ServiceAccountName != "" || s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Error("the host pod could get a host service-account token")
	}
	if s.PriorityClassName != "" || s.EnableServiceLinks == nil || *s.EnableServiceLinks {
		t.Error("priority class or host service links kept")
	}
	if len(s.Tolerations) != 0 {
		t.Errorf("tolerations %+v: without --tolerations none of the tenant's may pass", s.Tolerations)
	}
	if s.ImagePullSecrets[0].Name != "registry-x-shop-x-demo" {
		t.Errorf("pull secret %s", s.ImagePullSecrets[0].Name)
	}
	c := s.Containers[0]
	env0 := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env0[e.Name] = e
	}
	if env0["POD_NAME"].ValueFrom.FieldRef.FieldPath != "metadata.annotations['warren.dev/name']" {
		t.Errorf("downward API name: %+v", env0["POD_NAME"].ValueFrom.FieldRef)
	}
	if env0["PASSWORD"].ValueFrom.SecretKeyRef.Name != "db-x-shop-x-demo" || c.EnvFrom[0].ConfigMapRef.Name != "settings-x-shop-x-demo" {
		t.Error("secret or configmap reference not translated")
	}
	if env0["KUBERNETES_SERVICE_HOST"].Value != APIHostName || env0["KUBERNETES_PORT_443_TCP_ADDR"].Value != "10.96.5.5" || env0["DB_MAIN_SERVICE_HOST"].Value != "10.96.3.3" ||
		env0["DB_MAIN_PORT_5432_TCP"].Value != "tcp://10.96.3.3:5432" {
		t.Errorf("service environment: %v", env0)
	}
	proj := s.Volumes[0].Projected.Sources
	if proj[0].ServiceAccountToken != nil || proj[0].Secret == nil || proj[0].Secret.Name != TokenSecretName(names, tenantPod()) ||
		proj[0].Secret.Items[0].Key != "kube-api-access-0" || proj[0].Secret.Items[0].Path != "token" {
		t.Errorf("token projection: %+v", proj[0])
	}
	if proj[1].ConfigMap.Name != "kube-root-ca.crt-x-shop-x-demo" {
		t.Errorf("root CA projection: %+v", proj[1])
	}
	if s.Volumes[1].PersistentVolumeClaim.ClaimName != "data-x-shop-x-demo" {
		t.Error("claim not translated")
	}
	if s.DNSPolicy != corev1.DNSNone || s.DNSConfig.Nameservers[0] != "10.96.0.10" || s.DNSConfig.Searches[0] != "shop.svc.cluster.local" {
		t.Errorf("DNS: %s %+v", s.DNSPolicy, s.DNSConfig)
	}
	if len(s.HostAliases) != 1 || s.HostAliases[0].IP != "10.96.5.5" || !slices.Contains(s.HostAliases[0].Hostnames, APIHostName) {
		t.Errorf("kubernetes.default alias: %+v", s.HostAliases)
	}
	sel := s.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector
	if sel.MatchLabels["app"] != "web" || sel.MatchLabels[v1alpha1.ClusterLabel] != "demo" ||
		sel.MatchExpressions[0].Key != v1alpha1.SyncerNamespaceLabel || sel.MatchExpressions[0].Values[0] != "shop" {
		t.Errorf("anti-affinity selector not confined: %+v", sel)
	}
	if got := TokenProjections(tenantPod()); len(got) != 1 || got[0].ExpirationSeconds != 3607 || got[0].Key != "kube-api-access-0" {
		t.Errorf("token projections %+v", got)
	}
}

func TestWithoutVirtualDNSAPodNeverGetsTheHostsDNS(t *testing.T) {
	h := HostPod(tenantPod(), Env{Names: names, ClusterDomain: "cluster.local"})
	if h.Spec.DNSPolicy != corev1.DNSDefault {
		t.Fatalf("DNS policy %s", h.Spec.DNSPolicy)
	}
}

// Class 5: the platform places pods. A node name, hostname selectors and
// node-name fields never reach the host; the platform's selector and
// tolerations do, and tenant tolerations outside them are dropped.
func TestPlacementIsThePlatforms(t *testing.T) {
	w := config.Workloads{
		NodeSelector: map[string]string{"pool": "tenants"},
		Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "tenants", Effect: corev1.TaintEffectNoSchedule}},
	}
	p := tenantPod()
	p.Spec.NodeName = "server-0"
	p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "server-0", "k3s.io/hostname": "server-0", "pool": "system", "disk": "ssd"}
	p.Spec.Tolerations = append(p.Spec.Tolerations,
		corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		corev1.Toleration{Key: "node.kubernetes.io/unschedulable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		corev1.Toleration{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists})
	p.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"server-0"}}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"server-0"}}}},
		}},
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 1, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"server-0"}},
				{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}},
		},
	}
	h := HostPod(p, Env{Names: names, Workloads: w})
	s := h.Spec
	if s.NodeName != "" {
		t.Fatalf("nodeName %q reached the host", s.NodeName)
	}
	want := map[string]string{"pool": "tenants", "disk": "ssd"}
	if !maps.Equal(s.NodeSelector, want) {
		t.Errorf("node selector %v, want %v", s.NodeSelector, want)
	}
	if s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		t.Errorf("required node affinity on node identity kept: %+v", s.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
	}
	pref := s.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	if len(pref) != 1 || len(pref[0].Preference.MatchExpressions) != 1 || pref[0].Preference.MatchExpressions[0].Key != "zone" {
		t.Errorf("preferred affinity %+v", pref)
	}
	var keys []string
	for _, tol := range s.Tolerations {
		keys = append(keys, tol.Key)
	}
	if strings.Join(keys, ",") != "dedicated,"+corev1.TaintNodeNotReady {
		t.Errorf("tolerations %v: want the platform's and the eviction timing one", keys)
	}
	dropped := placement(p.Spec.DeepCopy(), w)
	for _, d := range []string{"spec.nodeName", "kubernetes.io/hostname", "matchFields", "unschedulable", "CriticalAddonsOnly", "spec.nodeSelector[pool]"} {
		if !strings.Contains(strings.Join(dropped, " "), d) {
			t.Errorf("dropped %v does not name %s", dropped, d)
		}
	}
}

// Class 8: only allowlisted annotations reach the host pod, never one in
// warren's domain, and the syncer's own are there.
func TestPodAnnotationsPassOnlyTheAllowlist(t *testing.T) {
	p := tenantPod()
	p.Annotations = map[string]string{
		"k8s.v1.cni.cncf.io/networks":                      "host-net",
		"cni.projectcalico.org/ipAddrs":                    `["10.0.0.1"]`,
		"traffic.sidecar.istio.io/excludeOutboundIPRanges": "0.0.0.0/0",
		"cluster-autoscaler.kubernetes.io/safe-to-evict":   "false",
		"prometheus.io/scrape":                             "true",
		"warren.dev/name":                                  "forged",
		"x.warren.dev/component":                           "control-plane",
	}
	w := config.Workloads{PodAnnotations: config.Keys{"prometheus.io/*", "x.warren.dev/*"}}
	h := HostPod(p, Env{Names: names, Workloads: w})
	for k, v := range p.Annotations {
		kept := h.Annotations[k] == v
		if want := k == "prometheus.io/scrape"; kept != want {
			t.Errorf("annotation %s kept=%v", k, kept)
		}
	}
	if h.Annotations[v1alpha1.OriginNameAnnotation] != "web-0" || h.Annotations[AnnotationServiceAccount] != "builder" {
		t.Errorf("the syncer's own annotations: %v", h.Annotations)
	}
}

// Class 3: a generic ephemeral volume's template never reaches the host;
// the host pod mounts the twin of the claim the virtual cluster made.
func TestEphemeralVolumesMountTheVirtualClaimsTwin(t *testing.T) {
	p := tenantPod()
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
		VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}},
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "host-root", StorageClassName: ptr.To(""),
				DataSource: &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "data-demo-0"}},
		}}}})
	h := HostPod(p, Env{Names: names})
	v := h.Spec.Volumes[len(h.Spec.Volumes)-1]
	if v.Ephemeral != nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != names.HostName("shop", "web-0-scratch") {
		t.Fatalf("ephemeral volume on the host: %+v", v.VolumeSource)
	}
	refs := syncer.PodRefs(p)
	if !slices.ContainsFunc(refs, func(r syncer.Ref) bool {
		return r.Kind == "PersistentVolumeClaim" && r.Name == "web-0-scratch" && r.Field == "spec.volumes[2].ephemeral"
	}) {
		t.Errorf("the claim is not among the checked references: %+v", refs)
	}
}

// Every reference the host pod will carry is listed for the origin check.
func TestReferencesListEveryNamedObject(t *testing.T) {
	var got []string
	for _, r := range syncer.PodRefs(tenantPod()) {
		got = append(got, r.Kind+"/"+r.Name)
	}
	slices.Sort(got)
	want := []string{"ConfigMap/kube-root-ca.crt", "ConfigMap/settings", "PersistentVolumeClaim/data", "Secret/db", "Secret/registry"}
	if !slices.Equal(got, want) {
		t.Errorf("references %v, want %v", got, want)
	}
}

// Class 9: DNS servers a pod names itself may be the virtual cluster's DNS,
// platform CIDRs or public resolvers; never the host's DNS.
func TestNameserversNeverTheHosts(t *testing.T) {
	n := &Nameservers{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/16"), Allowed: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")}}
	n.SetVirtualDNS("10.96.7.7")
	for server, ok := range map[string]bool{
		"10.96.7.7": true, "192.168.50.53": true, "1.1.1.1": true, "2606:4700:4700::1111": true,
		"10.96.0.10": false, "169.254.20.10": false, "127.0.0.53": false, "::1": false, "10.244.0.5": false,
		"100.64.0.10": false, "0.0.0.0": false, "fd00::10": false, "::ffff:10.96.0.10": false, "dns.example": false,
	} {
		if got := n.Refuse(server) == ""; got != ok {
			t.Errorf("nameserver %s allowed=%v, want %v (%s)", server, got, ok, n.Refuse(server))
		}
	}
	sec, err := NewSecurity("baseline")
	if err != nil {
		t.Fatal(err)
	}
	sec.Nameservers = n
	p := tenantPod()
	p.Spec.DNSPolicy = corev1.DNSNone
	p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}}
	if r := sec.Check(p); !strings.Contains(r, "spec.dnsConfig.nameservers[0] 10.96.0.10") {
		t.Errorf("host DNS under dnsPolicy None: reason %q", r)
	}
	p.Spec.DNSConfig.Nameservers = []string{"10.96.7.7"}
	if r := sec.Check(p); r != "" {
		t.Errorf("the virtual DNS refused: %q", r)
	}
}

// Class 5: a pod created with a node name (not bound by the syncer) is
// refused; one the syncer bound is not.
func TestATenantChosenNodeNameIsRefused(t *testing.T) {
	sec, err := NewSecurity("baseline")
	if err != nil {
		t.Fatal(err)
	}
	p := tenantPod()
	p.Spec.NodeName = "server-0"
	if r := sec.Check(p); !strings.Contains(r, "spec.nodeName") {
		t.Errorf("reason %q", r)
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	if r := sec.Check(p); r != "" {
		t.Errorf("a bound pod refused: %q", r)
	}
}

func TestSecurityRefusesWithReadableReasons(t *testing.T) {
	baseline, err := NewSecurity("baseline")
	if err != nil {
		t.Fatal(err)
	}
	restricted, err := NewSecurity("restricted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSecurity("privileged"); err == nil {
		t.Fatal("privileged must not be a level")
	}
	ok := tenantPod()
	if r := baseline.Check(ok); r != "" {
		t.Fatalf("an ordinary pod refused: %s", r)
	}
	if r := restricted.Check(ok); !strings.Contains(r, "restricted") {
		t.Fatalf("restricted should refuse a pod without a security context: %q", r)
	}
	cases := map[string]func(*corev1.Pod){
		"privileged": func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		},
		"hostPath": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
		},
		"hostNetwork": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"hostPID":     func(p *corev1.Pod) { p.Spec.HostPID = true },
		"non-default capabilities": func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
		},
		"node-role.kubernetes.io/control-plane": func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{"node-role.kubernetes.io/control-plane": ""}
		},
		"volume \"rbd\"": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "rbd", VolumeSource: corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{}}})
		},
	}
	for want, mutate := range cases {
		p := tenantPod()
		mutate(p)
		if r := baseline.Check(p); !strings.Contains(r, want) {
			t.Errorf("%s: reason %q", want, r)
		}
	}
}
