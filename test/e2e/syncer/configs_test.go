package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	"github.com/warren-dev/warren/test/testkit"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// originNames lists "Kind/name" of the host objects of a virtual namespace.
func originNames(t *testing.T, list client.ObjectList, ns string) []string {
	t.Helper()
	got, err := hostObjects(t.Context(), list, ns)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, item := range mustItems(t, got) {
		o, ok := w.names.OriginOf(objectOf(item))
		if ok {
			out = append(out, o.Kind+"/"+o.Name)
		}
	}
	slices.Sort(out)
	return out
}

// A pod that mounts a ConfigMap, a Secret and a claim takes exactly those to
// the host; when the pod goes, the ConfigMap and Secret go too.
func TestOnlyWhatAPodUsesReachesTheHost(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "billing")
	create(t, ctx, w.virtualC,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}, Data: map[string]string{"mode": "live"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unused", Namespace: ns}, Data: map[string]string{"x": "y"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "password", Namespace: ns}, StringData: map[string]string{"pw": "hunter2"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unused", Namespace: ns}, StringData: map[string]string{"pw": "nope"}},
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns}, Spec: corev1.PodSpec{
			AutomountServiceAccountToken: new(bool),
			Containers:                   []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{
				{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}},
				{Name: "password", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "password"}}},
				{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
			},
		}},
	)
	want := []string{"ConfigMap/settings", "PersistentVolumeClaim/data", "Secret/password"}
	testkit.Eventually(t, 30*time.Second, "exactly the three used objects on the host", func() (bool, string) {
		var got []string
		got = append(got, originNames(t, &corev1.ConfigMapList{}, ns)...)
		got = append(got, originNames(t, &corev1.SecretList{}, ns)...)
		got = append(got, originNames(t, &corev1.PersistentVolumeClaimList{}, ns)...)
		slices.Sort(got)
		return slices.Equal(got, want), fmt.Sprintf("host has %v", got)
	})
	h := &corev1.Secret{}
	if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "password")}, h); err != nil {
		t.Fatal(err)
	}
	if string(h.Data["pw"]) != "hunter2" {
		t.Errorf("host secret data = %q", h.Data["pw"])
	}

	if err := w.virtualC.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 60*time.Second, "the ConfigMap and Secret removed with the pod", func() (bool, string) {
		got := append(originNames(t, &corev1.ConfigMapList{}, ns), originNames(t, &corev1.SecretList{}, ns)...)
		return len(got) == 0, fmt.Sprintf("host still has %v", got)
	})
	// The claim is the tenant's data: it stays while its virtual twin does.
	if got := originNames(t, &corev1.PersistentVolumeClaimList{}, ns); !slices.Equal(got, []string{"PersistentVolumeClaim/data"}) {
		t.Errorf("host claims = %v", got)
	}
}

// Projected service-account tokens come from the virtual API, bound to the
// virtual pod, and reach the host only in a Secret the host pod owns.
func TestPodTokensComeFromTheVirtualAPI(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "tokens")
	create(t, ctx, w.virtualC, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}})
	testkit.Eventually(t, 30*time.Second, "a host token Secret owned by the host pod", func() (bool, string) {
		var secrets corev1.SecretList
		if _, err := hostObjects(ctx, &secrets, ns); err != nil {
			return false, err.Error()
		}
		for _, s := range secrets.Items {
			if s.Annotations[v1alpha1.OriginKindAnnotation] == "PodToken" && len(s.OwnerReferences) == 1 && s.OwnerReferences[0].Kind == "Pod" {
				for _, tok := range s.Data {
					return len(tok) > 100, "token length " + fmt.Sprint(len(tok))
				}
			}
		}
		return false, fmt.Sprintf("%d secrets", len(secrets.Items))
	})
	// And the root CA the projection needs came along.
	testkit.Eventually(t, 30*time.Second, "the root CA ConfigMap on the host", func() (bool, string) {
		got := originNames(t, &corev1.ConfigMapList{}, ns)
		return slices.Equal(got, []string{"ConfigMap/kube-root-ca.crt"}), fmt.Sprint(got)
	})
}

// When the host binds a claim's twin (the host plane's default StorageClass
// provisions a volume), the virtual claim is bound too, to a virtual volume
// named like the host volume, with its capacity.
func TestClaimsComeBackBound(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "storage")
	create(t, ctx, w.virtualC, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}})
	testkit.Eventually(t, 60*time.Second, "the virtual claim Bound to the host's volume", func() (bool, string) {
		v, h := &corev1.PersistentVolumeClaim{}, &corev1.PersistentVolumeClaim{}
		if err := w.virtualC.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, v); err != nil {
			return false, err.Error()
		}
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "db")}, h); err != nil {
			return false, err.Error()
		}
		size := v.Status.Capacity[corev1.ResourceStorage]
		return h.Spec.VolumeName != "" && v.Status.Phase == corev1.ClaimBound && v.Spec.VolumeName == h.Spec.VolumeName && size.String() == "1Gi",
			fmt.Sprintf("host %s %q; virtual %s %q capacity %s", h.Status.Phase, h.Spec.VolumeName, v.Status.Phase, v.Spec.VolumeName, size.String())
	})
}

// A tenant pod's in-cluster client (KUBERNETES_SERVICE_HOST and _PORT, the
// mounted ca.crt) verifies the virtual API server's certificate, and the
// name it connects to resolves, through the pod's host alias, to the host
// Service that serves the virtual API. (The Service's address is not
// reachable from this machine, so the handshake goes to the virtual plane's
// own address with the name the pod would use.)
func TestInClusterClientsVerifyTheVirtualAPI(t *testing.T) {
	ctx := setup(t)
	ns := namespace(t, ctx, "incluster")
	create(t, ctx, w.virtualC, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	})
	h, ca := &corev1.Pod{}, &corev1.ConfigMap{}
	testkit.Eventually(t, 30*time.Second, "the host pod and its copy of kube-root-ca.crt", func() (bool, string) {
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "client")}, h); err != nil {
			return false, err.Error()
		}
		if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: w.names.HostName(ns, "kube-root-ca.crt")}, ca); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	env := map[string]string{}
	for _, e := range h.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	host, port := env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
	api := &corev1.Service{}
	if err := w.hostC.Get(ctx, client.ObjectKey{Namespace: hostNamespace, Name: clusterName}, api); err != nil {
		t.Fatal(err)
	}
	if port != "443" || host != api.Spec.ClusterIP && !slices.ContainsFunc(h.Spec.HostAliases, func(a corev1.HostAlias) bool {
		return a.IP == api.Spec.ClusterIP && slices.Contains(a.Hostnames, host)
	}) {
		t.Fatalf("KUBERNETES_SERVICE_HOST=%q PORT=%q does not lead to the API Service %s through the host aliases %+v", host, port, api.Spec.ClusterIP, h.Spec.HostAliases)
	}

	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ca.Data["ca.crt"])) {
		t.Fatal("the mounted ca.crt holds no certificate")
	}
	u, err := url.Parse(w.virtual.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{ServerName: host, RootCAs: roots})
	if err != nil {
		t.Fatalf("an in-cluster client connecting to %s is refused the virtual API's certificate: %v", host, err)
	}
	_ = conn.Close()
}
