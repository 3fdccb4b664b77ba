package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/translate"
	"github.com/warren-dev/warren/test/testkit"
)

// The escape stories of docs/security.md: a tenant with cluster-admin in
// its virtual cluster tries each way out the issue found, on the syncer at
// both pod security levels, and the host objects' fields are asserted.

// tenant is one virtual cluster under attack.
type tenant struct {
	level string
	c     client.Client
	names translate.Translator
}

// policyFlags is the platform's word for both tenants (the shared syncer
// gets the same from the harness).
var policyFlags = []string{
	"--sync-ingresses=true",
	"--endpoint-cidrs=192.0.2.0/24",
	"--ingress-hosts=shop.example,*.apps.example.com",
	"--ingress-classes=public",
	"--ingress-annotations=nginx.ingress.kubernetes.io/ssl-redirect",
	"--pod-annotations=prometheus.io/*",
	"--node-selector=pool=tenants",
	`--tolerations=[{"key":"dedicated","operator":"Equal","value":"tenants","effect":"NoSchedule"}]`,
}

func TestIsolationHoldsAgainstAHostileTenant(t *testing.T) {
	setup(t)
	for _, level := range []string{"baseline", "restricted"} {
		t.Run(level, func(t *testing.T) {
			tn := tenant{level: "baseline", c: w.virtualC, names: w.names}
			if level == "restricted" {
				c, name := ownClusterNamed(t, "iso-restricted", nil, append([]string{"--pod-security=restricted"}, policyFlags...)...)
				tn = tenant{level: level, c: c, names: translate.Translator{Cluster: name, HostNamespace: "vc-" + name}}
			}
			t.Run("1 reserved label keys", func(t *testing.T) { reservedKeys(t, tn) })
			t.Run("2 references stay the tenant's", func(t *testing.T) { references(t, tn) })
			t.Run("3 ephemeral volumes and claims", func(t *testing.T) { claimSources(t, tn) })
			t.Run("4 storage classes", func(t *testing.T) { storageClasses(t, tn) })
			t.Run("5 placement", func(t *testing.T) { placement(t, tn) })
			t.Run("6 endpoints", func(t *testing.T) { endpointAddresses(t, tn) })
			t.Run("7 ingresses", func(t *testing.T) { ingressPolicy(t, tn) })
			t.Run("8 pod annotations", func(t *testing.T) { podAnnotations(t, tn) })
			t.Run("9 DNS and debug containers", func(t *testing.T) { dnsAndDebug(t, tn) })
		})
	}
}

func (tn tenant) namespace(t *testing.T, name string) string {
	t.Helper()
	name = unique(name)
	create(t, t.Context(), tn.c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

// host reads the host twin of the tenant's ns/name into obj.
func (tn tenant) host(ctx context.Context, ns, name string, obj client.Object) error {
	return w.hostC.Get(ctx, client.ObjectKey{Namespace: tn.names.HostNamespace, Name: tn.names.HostName(ns, name)}, obj)
}

// pod is a pod that passes the restricted standard, so each story tests
// its own check at both levels.
func pod(ns, name string, mut func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1", SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
	}}
	if mut != nil {
		mut(p)
	}
	return p
}

// warning waits for a Warning event with reason on the tenant's object
// whose message contains each of want.
func (tn tenant) warning(t *testing.T, ns, kind, name, reason string, want ...string) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, fmt.Sprintf("a %s event on %s %s/%s", reason, kind, ns, name), func() (bool, string) {
		var list corev1.EventList
		if err := tn.c.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.InvolvedObject.Kind != kind || e.InvolvedObject.Name != name || e.Type != corev1.EventTypeWarning {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == reason && containsAll(e.Message, want) {
				return true, ""
			}
		}
		return false, fmt.Sprint(seen)
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// absent asserts that the host never gets a twin of ns/name (checked after
// the refusal was seen, so the syncer has decided).
func (tn tenant) absent(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := tn.host(t.Context(), ns, name, obj); !isNotFound(err) {
		t.Errorf("the host has a %T for %s/%s (err %v)", obj, ns, name, err)
	}
}

// hostPod waits for the host twin of a pod and returns it.
func (tn tenant) hostPod(t *testing.T, ns, name string, ready func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	h := &corev1.Pod{}
	testkit.Eventually(t, 60*time.Second, "the host pod of "+ns+"/"+name, func() (bool, string) {
		if err := tn.host(t.Context(), ns, name, h); err != nil {
			return false, err.Error()
		}
		return ready == nil || ready(h), fmt.Sprintf("phase %s on %q ip %q", h.Status.Phase, h.Spec.NodeName, h.Status.PodIP)
	})
	return h
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" }

// Class 1: a tenant's labels and annotations in warren's domain never reach
// the host, so no tenant pod can join a selector of warren's.
func reservedKeys(t *testing.T, tn tenant) {
	ns := tn.namespace(t, "iso-labels")
	forged := map[string]string{
		"app.kubernetes.io/name": "warren-control-plane", v1alpha1.ClusterLabel: "other", v1alpha1.SyncerManagedByLabel: "reconciler",
		"warren.dev/component": "control-plane", "api.warren.dev/role": "server",
	}
	create(t, t.Context(), tn.c,
		pod(ns, "mitm", func(p *corev1.Pod) {
			p.Labels = maps.Clone(forged)
			p.Annotations = map[string]string{v1alpha1.OriginNameAnnotation: "demo-0", v1alpha1.OriginKindAnnotation: "StatefulSet"}
		}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "mitm", Namespace: ns, Labels: maps.Clone(forged)},
			Spec: corev1.ServiceSpec{Selector: maps.Clone(forged), Ports: []corev1.ServicePort{{Port: 443}}}},
	)
	h := tn.hostPod(t, ns, "mitm", nil)
	svc := &corev1.Service{}
	testkit.Eventually(t, 30*time.Second, "the host Service", func() (bool, string) {
		err := tn.host(t.Context(), ns, "mitm", svc)
		return err == nil, fmt.Sprint(err)
	})
	own := map[string]string{v1alpha1.ClusterLabel: tn.names.Cluster, v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue, v1alpha1.SyncerNamespaceLabel: ns}
	for what, m := range map[string]map[string]string{"pod labels": h.Labels, "service labels": svc.Labels, "service selector": svc.Spec.Selector} {
		for k, v := range m {
			if translate.Reserved(k) && own[k] != v {
				t.Errorf("%s: %s=%s reached the host", what, k, v)
			}
		}
	}
	if h.Annotations[v1alpha1.OriginNameAnnotation] != "mitm" || h.Annotations[v1alpha1.OriginKindAnnotation] != "Pod" {
		t.Errorf("forged origin annotations: %v", h.Annotations)
	}
}

// Class 2: names are injective, and every reference is checked against
// the twin it reaches.
func references(t *testing.T, tn tenant) {
	ctx := t.Context()
	n := tn.namespace(t, "iso-ref")
	xn := tn.namespace(t, "x-"+n) // ("db-x", n) and ("db", "x-n") met before
	create(t, ctx, tn.c,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-x", Namespace: n}, StringData: map[string]string{"pw": "victim"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: xn}, StringData: map[string]string{"pw": "attacker"}},
		pod(n, "victim", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db-x"}}}}
		}),
		pod(xn, "thief", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}
		}),
	)
	victim, thief := tn.hostPod(t, n, "victim", nil), tn.hostPod(t, xn, "thief", nil)
	if a, b := victim.Spec.Volumes[0].Secret.SecretName, thief.Spec.Volumes[0].Secret.SecretName; a == b {
		t.Fatalf("both pods mount host Secret %q", a)
	}
	sec := &corev1.Secret{}
	testkit.Eventually(t, 30*time.Second, "the thief's own Secret on the host", func() (bool, string) {
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: tn.names.HostNamespace, Name: thief.Spec.Volumes[0].Secret.SecretName}, sec); err != nil {
			return false, err.Error()
		}
		return tn.names.Owns(sec, "Secret", xn, "db"), fmt.Sprint(sec.Annotations)
	})

	// A host object holding a reference's translated name that is not its
	// twin (here one made by hand on the host): the pod is refused.
	create(t, ctx, w.hostC, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tn.names.HostName(n, "creds"), Namespace: tn.names.HostNamespace}})
	create(t, ctx, tn.c, pod(n, "borrower", func(p *corev1.Pod) {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}}
	}))
	tn.warning(t, n, "Pod", "borrower", "PodSecurity", "spec.containers[0].envFrom[0].secretRef", "is not the copy of Secret")
	tn.absent(t, n, "borrower", &corev1.Pod{})
}

// Class 3: an ephemeral volume's template, and a claim, never pick a host
// volume or another claim.
func claimSources(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-claims")
	template := func(mut func(*corev1.PersistentVolumeClaimSpec)) *corev1.PersistentVolumeClaimTemplate {
		tpl := &corev1.PersistentVolumeClaimTemplate{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue, v1alpha1.ClusterLabel: tn.names.Cluster}},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		}
		mut(&tpl.Spec)
		return tpl
	}
	create(t, ctx, tn.c, pod(ns, "raider", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{
			{Name: "root", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: template(func(s *corev1.PersistentVolumeClaimSpec) {
				s.VolumeName = "host-root"
			})}}},
			// The control plane's own data claim in the host namespace.
			{Name: "etcd", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: template(func(s *corev1.PersistentVolumeClaimSpec) {
				s.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "data-" + tn.names.Cluster + "-0"}
			})}}},
			{Name: "snap", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: template(func(s *corev1.PersistentVolumeClaimSpec) {
				s.DataSourceRef = &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "etcd-backup"}
			})}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{VolumeClaimTemplate: template(func(*corev1.PersistentVolumeClaimSpec) {})}}},
		}
	}))
	h := tn.hostPod(t, ns, "raider", nil)
	for i, v := range h.Spec.Volumes[:4] {
		if v.Ephemeral != nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != tn.names.HostName(ns, "raider-"+v.Name) {
			t.Errorf("volume %d on the host: %+v", i, v.VolumeSource)
		}
	}
	tn.warning(t, ns, "PersistentVolumeClaim", "raider-root", "ClaimRefused", "spec.volumeName")
	tn.warning(t, ns, "PersistentVolumeClaim", "raider-snap", "ClaimRefused", "spec.dataSourceRef")
	tn.absent(t, ns, "raider-root", &corev1.PersistentVolumeClaim{})
	tn.absent(t, ns, "raider-snap", &corev1.PersistentVolumeClaim{})
	// The clone source is the tenant's own claim of that name, never the
	// control plane's.
	etcd := &corev1.PersistentVolumeClaim{}
	testkit.Eventually(t, 60*time.Second, "the etcd claim's twin", func() (bool, string) {
		err := tn.host(ctx, ns, "raider-etcd", etcd)
		return err == nil, fmt.Sprint(err)
	})
	if src := etcd.Spec.DataSource; src == nil || src.Name != tn.names.HostName(ns, "data-"+tn.names.Cluster+"-0") {
		t.Errorf("clone source on the host: %+v", src)
	}
	scratch := &corev1.PersistentVolumeClaim{}
	testkit.Eventually(t, 60*time.Second, "the scratch claim's twin", func() (bool, string) {
		err := tn.host(ctx, ns, "raider-scratch", scratch)
		return err == nil, fmt.Sprint(err)
	})
	// The host's own volume controller may have bound the twin by now: a
	// volume name is allowed only when that controller set it.
	boundByHost := scratch.Annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
	if (scratch.Spec.VolumeName != "" && !boundByHost) || scratch.Spec.DataSource != nil || scratch.Labels[v1alpha1.SyncerManagedByLabel] != v1alpha1.SyncerManagedByValue ||
		!tn.names.Owns(scratch, "PersistentVolumeClaim", ns, "raider-scratch") {
		t.Errorf("scratch claim on the host: %+v %v", scratch.Spec, scratch.Annotations)
	}
}

// Class 4: a claim uses only the classes the platform allows; static
// binding is refused.
func storageClasses(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-classes")
	claim := func(name string, class *string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: class, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	}
	create(t, ctx, tn.c, claim("static", ptr.To("")), claim("nfs", ptr.To("team-b-nfs")))
	tn.warning(t, ns, "PersistentVolumeClaim", "static", "ClaimRefused", `storageClassName: ""`, "--allow-static-binding")
	tn.absent(t, ns, "static", &corev1.PersistentVolumeClaim{})
	if tn.c == w.virtualC {
		// The shared syncer mirrors the host's classes: a class outside the
		// list is refused.
		tn.warning(t, ns, "PersistentVolumeClaim", "nfs", "ClaimRefused", `"team-b-nfs" is not a class this cluster may use`)
		tn.absent(t, ns, "nfs", &corev1.PersistentVolumeClaim{})
		return
	}
	// Without the mirror the tenant's class names mean nothing on the host:
	// the claim gets the host's default.
	h := &corev1.PersistentVolumeClaim{}
	testkit.Eventually(t, 30*time.Second, "the claim's twin", func() (bool, string) {
		err := tn.host(ctx, ns, "nfs", h)
		return err == nil, fmt.Sprint(err)
	})
	if c := ptr.Deref(h.Spec.StorageClassName, ""); c == "team-b-nfs" {
		t.Errorf("the host claim names class %q", c)
	}
}

// Class 5: the platform places pods; a tenant cannot pick a node.
func placement(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-placement")
	create(t, ctx, tn.c,
		pod(ns, "pinned", func(p *corev1.Pod) { p.Spec.NodeName = serverNode }),
		pod(ns, "sneaky", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: serverNode, "pool": "system"}
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists},
				{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{serverNode}}}}},
			}}}
		}),
	)
	tn.warning(t, ns, "Pod", "pinned", "PodSecurity", "spec.nodeName")
	tn.absent(t, ns, "pinned", &corev1.Pod{})
	h := tn.hostPod(t, ns, "sneaky", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	if h.Spec.NodeName != tenantNode || !maps.Equal(h.Spec.NodeSelector, map[string]string{"pool": "tenants"}) || h.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		t.Errorf("host pod on %q with selector %v, affinity %+v", h.Spec.NodeName, h.Spec.NodeSelector, h.Spec.Affinity.NodeAffinity)
	}
	for _, tol := range h.Spec.Tolerations {
		if tol.Key != "dedicated" && tol.Key != corev1.TaintNodeNotReady && tol.Key != corev1.TaintNodeUnreachable {
			t.Errorf("tenant toleration %+v reached the host", tol)
		}
	}
	tn.warning(t, ns, "Pod", "sneaky", "PlacementOutsidePolicy", "kubernetes.io/hostname", "matchFields", "node-role.kubernetes.io/control-plane")
}

// Class 6: a selector-less Service points only at the cluster's own pods
// and the platform's ranges.
func endpointAddresses(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-endpoints")
	create(t, ctx, tn.c, pod(ns, "backend", nil))
	own := tn.hostPod(t, ns, "backend", running).Status.PodIP
	// Another tenant's pod: a pod in another host namespace.
	other := unique("iso-other-tenant")
	create(t, ctx, w.hostC, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}, pod(other, "victim", nil))
	victim := &corev1.Pod{}
	testkit.Eventually(t, 60*time.Second, "the other tenant's pod address", func() (bool, string) {
		err := w.hostC.Get(ctx, client.ObjectKey{Namespace: other, Name: "victim"}, victim)
		return err == nil && victim.Status.PodIP != "", fmt.Sprint(err)
	})
	hostAPI := strings.TrimSuffix(w.host.ServiceCIDR, "0/16") + "1"
	// (The virtual API itself refuses loopback and link-local endpoint
	// addresses; the unit table tries them against the syncer.)
	attempts := []string{own, "192.0.2.10", victim.Status.PodIP, hostAPI, "10.255.0.1"}
	var endpoints []discoveryv1.Endpoint
	for _, a := range slices.Compact(attempts) {
		endpoints = append(endpoints, discoveryv1.Endpoint{Addresses: []string{a}, NodeName: ptr.To(serverNode)})
	}
	create(t, ctx, tn.c,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: ns}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "lb-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "lb"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: endpoints, Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}}},
	)
	want := []string{own, "192.0.2.10"}
	slices.Sort(want)
	testkit.Eventually(t, 60*time.Second, "the host slice with the own pod and the allowed range only", func() (bool, string) {
		got := sliceIPs(t, w.hostC, tn.names.HostNamespace, tn.names.HostName(ns, "lb"))
		return slices.Equal(got, want), fmt.Sprintf("host addresses %v, want %v", got, want)
	})
	tn.warning(t, ns, "EndpointSlice", "lb-1", "EndpointsNotAllowed", victim.Status.PodIP, hostAPI, "10.255.0.1")
	h := &discoveryv1.EndpointSlice{}
	if err := tn.host(ctx, ns, "lb-1", h); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.Endpoints {
		if ptr.Deref(e.NodeName, "") == serverNode {
			t.Errorf("the tenant's node name reached the host: %+v", e)
		}
	}
}

// Class 7: Ingresses claim only the platform's hosts and classes, with
// only allowed annotations.
func ingressPolicy(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-ingress")
	ing := func(name string, mut func(*networkingv1.Ingress)) *networkingv1.Ingress {
		i := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To("public"),
			Rules: []networkingv1.IngressRule{{Host: name + ".apps.example.com", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}},
		}}
		mut(i)
		return i
	}
	refused := map[string]func(*networkingv1.Ingress){
		"other-host": func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "api.example.com" },
		"catch-all":  func(i *networkingv1.Ingress) { i.Spec.Rules[0].Host = "" },
		"default-backend": func(i *networkingv1.Ingress) {
			i.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}}
		},
		"internal-class": func(i *networkingv1.Ingress) { i.Spec.IngressClassName = ptr.To("internal") },
	}
	reasons := map[string]string{"other-host": `"api.example.com" is not a host`, "catch-all": "a rule without a host", "default-backend": "spec.defaultBackend", "internal-class": `"internal" is not a class`}
	for name, mut := range refused {
		create(t, ctx, tn.c, ing(name, mut))
	}
	create(t, ctx, tn.c, ing("site", func(i *networkingv1.Ingress) {
		i.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/ssl-redirect":     "true",
			"nginx.ingress.kubernetes.io/auth-tls-secret":  "kube-system/ca",
			"nginx.ingress.kubernetes.io/proxy-ssl-secret": tn.names.HostNamespace + "/" + tn.names.Cluster + "-pki",
			"nginx.ingress.kubernetes.io/default-backend":  tn.names.Cluster,
			"nginx.ingress.kubernetes.io/auth-url":         "http://10.96.0.1/",
			"nginx.ingress.kubernetes.io/server-alias":     "api.example.com",
		}
	}))
	for name, reason := range reasons {
		tn.warning(t, ns, "Ingress", name, "IngressRefused", reason)
		tn.absent(t, ns, name, &networkingv1.Ingress{})
	}
	h := &networkingv1.Ingress{}
	testkit.Eventually(t, 30*time.Second, "the allowed Ingress on the host", func() (bool, string) {
		err := tn.host(ctx, ns, "site", h)
		return err == nil, fmt.Sprint(err)
	})
	for k := range h.Annotations {
		if !translate.Reserved(k) && k != "nginx.ingress.kubernetes.io/ssl-redirect" {
			t.Errorf("annotation %s reached the host", k)
		}
	}
	if b := h.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name; b != tn.names.HostName(ns, "web") {
		t.Errorf("backend %q", b)
	}
}

// Class 8: only allowlisted annotations reach a host pod.
func podAnnotations(t *testing.T, tn tenant) {
	ns := tn.namespace(t, "iso-annotations")
	create(t, t.Context(), tn.c, pod(ns, "annotated", func(p *corev1.Pod) {
		p.Annotations = map[string]string{
			"k8s.v1.cni.cncf.io/networks":                      "kube-system/host-net",
			"cni.projectcalico.org/ipAddrs":                    `["10.0.0.5"]`,
			"traffic.sidecar.istio.io/excludeOutboundIPRanges": "0.0.0.0/0",
			"cluster-autoscaler.kubernetes.io/safe-to-evict":   "false",
			"prometheus.io/scrape":                             "true",
		}
	}))
	h := tn.hostPod(t, ns, "annotated", nil)
	for k, v := range h.Annotations {
		if !translate.Reserved(k) && k != "prometheus.io/scrape" {
			t.Errorf("annotation %s=%s reached the host", k, v)
		}
	}
	if h.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("the allowed annotation is missing: %v", h.Annotations)
	}
}

// Class 9: no pod names the host's DNS, and a debug container is refused
// with an event.
func dnsAndDebug(t *testing.T, tn tenant) {
	ctx := t.Context()
	ns := tn.namespace(t, "iso-dns")
	hostDNS := strings.TrimSuffix(w.host.ServiceCIDR, "0/16") + "10"
	for name, server := range map[string]string{"host-dns": hostDNS, "node-local": "169.254.20.10"} {
		create(t, ctx, tn.c, pod(ns, name, func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{server}}
		}))
		tn.warning(t, ns, "Pod", name, "PodSecurity", "spec.dnsConfig.nameservers[0] "+server)
		tn.absent(t, ns, name, &corev1.Pod{})
	}
	// A root pod: baseline lets it run, restricted refuses it (the host
	// namespace enforces the same level).
	create(t, ctx, tn.c, pod(ns, "root", func(p *corev1.Pod) { p.Spec.SecurityContext = nil; p.Spec.Containers[0].SecurityContext = nil }))
	if tn.level == "restricted" {
		tn.warning(t, ns, "Pod", "root", "PodSecurity", `violates PodSecurity "restricted`)
		tn.absent(t, ns, "root", &corev1.Pod{})
	} else {
		tn.hostPod(t, ns, "root", nil)
	}

	create(t, ctx, tn.c, pod(ns, "debugged", nil))
	tn.hostPod(t, ns, "debugged", running)
	// kubectl debug: an ephemeral container (privileged, for good measure).
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		v := &corev1.Pod{}
		if err := tn.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "debugged"}, v); err != nil {
			return err
		}
		v.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debugger", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}}
		return tn.c.SubResource("ephemeralcontainers").Update(ctx, v)
	}); err != nil {
		t.Fatal(err)
	}
	tn.warning(t, ns, "Pod", "debugged", "EphemeralContainersNotSupported", `"debugger"`)
	if h := tn.hostPod(t, ns, "debugged", nil); len(h.Spec.EphemeralContainers) > 0 {
		t.Errorf("ephemeral containers reached the host: %+v", h.Spec.EphemeralContainers)
	}
}
