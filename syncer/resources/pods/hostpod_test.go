package pods

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/warren-dev/warren/syncer/translate"
)

var names = translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}

func tenantPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "u-1",
			Labels: map[string]string{"app": "web", translate.LabelCluster: "forged"}},
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
	if h.Labels[translate.LabelCluster] != "demo" || h.Labels["app"] != "web" {
		t.Errorf("labels %v", h.Labels)
	}
	s := h.Spec
	if s.ServiceAccountName != "" || s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Error("the host pod could get a host service-account token")
	}
	if s.PriorityClassName != "" || s.EnableServiceLinks == nil || *s.EnableServiceLinks {
		t.Error("priority class or host service links kept")
	}
	if len(s.Tolerations) != 1 || s.Tolerations[0].Key != "dedicated" {
		t.Errorf("tolerations %+v: control-plane and tolerate-all must go", s.Tolerations)
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
	if sel.MatchLabels["app"] != "web" || sel.MatchLabels[translate.LabelCluster] != "demo" ||
		sel.MatchExpressions[0].Key != translate.LabelNamespace || sel.MatchExpressions[0].Values[0] != "shop" {
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

func TestATenantBoundPodStaysOnItsNode(t *testing.T) {
	p := tenantPod()
	p.Spec.NodeName = "kwok-node-1"
	h := HostPod(p, Env{Names: names})
	if h.Spec.NodeName != "" || h.Spec.NodeSelector[corev1.LabelHostname] != "kwok-node-1" {
		t.Fatalf("node %q selector %v", h.Spec.NodeName, h.Spec.NodeSelector)
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
