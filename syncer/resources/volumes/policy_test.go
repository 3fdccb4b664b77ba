package volumes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

// Classes 3 and 4: every claim field that can pick a host volume, claim or
// class is translated or refused.
func TestClaimFieldsThatPickHostStorage(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	own := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: names.HostName("shop", "data"), Namespace: "vc-demo"}}
	names.Mark(own, translate.Origin{Kind: Kind, Namespace: "shop", Name: "data"})
	// The host twin of team/x-shop's claim: "data" of another namespace.
	other := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: names.HostName("shop", "stolen"), Namespace: "vc-demo"}}
	names.Mark(other, translate.Origin{Kind: Kind, Namespace: "team", Name: "stolen"})
	def := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "standard", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}}}
	host := fake.NewClientBuilder().WithObjects(own, other, def).Build()
	ours := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-1234"}, Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: HostVolumeDriver, VolumeHandle: "pvc-1234"}}}}
	virtual := fake.NewClientBuilder().WithObjects(ours).Build()

	claim := func(mut func(*corev1.PersistentVolumeClaimSpec)) *corev1.PersistentVolumeClaim {
		c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "shop"}}
		mut(&c.Spec)
		return c
	}
	cases := []struct {
		what    string
		flags   config.Config
		spec    func(*corev1.PersistentVolumeClaimSpec)
		refused string // "" means synced
		check   func(corev1.PersistentVolumeClaimSpec) bool
	}{
		{what: "no class: the host default", spec: func(*corev1.PersistentVolumeClaimSpec) {},
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return h.StorageClassName == nil }},
		{what: "static binding by empty class", spec: func(s *corev1.PersistentVolumeClaimSpec) { s.StorageClassName = ptr.To("") }, refused: "--allow-static-binding"},
		{what: "static binding allowed", flags: config.Config{Workloads: config.Workloads{AllowStaticBinding: true}},
			spec: func(s *corev1.PersistentVolumeClaimSpec) {
				s.StorageClassName = ptr.To("")
				s.VolumeName = "nfs-team-b"
			},
			check: func(h corev1.PersistentVolumeClaimSpec) bool {
				return *h.StorageClassName == "" && h.VolumeName == "nfs-team-b"
			}},
		{what: "a chosen host volume", spec: func(s *corev1.PersistentVolumeClaimSpec) { s.VolumeName = "hostpath-root" }, refused: "spec.volumeName"},
		{what: "the syncer's own binding made again", spec: func(s *corev1.PersistentVolumeClaimSpec) { s.VolumeName = "pvc-1234" },
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return h.VolumeName == "" }},
		{what: "a volume selector", spec: func(s *corev1.PersistentVolumeClaimSpec) {
			s.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}
		}, refused: "spec.selector"},
		{what: "a class outside the list, mirrored", flags: config.Config{SyncStorageClasses: true, Workloads: config.Workloads{StorageClasses: []string{"fast"}}},
			spec: func(s *corev1.PersistentVolumeClaimSpec) { s.StorageClassName = ptr.To("nfs-team-b") }, refused: `"nfs-team-b" is not a class`},
		{what: "a listed class", flags: config.Config{SyncStorageClasses: true, Workloads: config.Workloads{StorageClasses: []string{"fast"}}},
			spec:  func(s *corev1.PersistentVolumeClaimSpec) { s.StorageClassName = ptr.To("fast") },
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return *h.StorageClassName == "fast" }},
		{what: "the host default by name", flags: config.Config{SyncStorageClasses: true},
			spec:  func(s *corev1.PersistentVolumeClaimSpec) { s.StorageClassName = ptr.To("standard") },
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return *h.StorageClassName == "standard" }},
		{what: "a virtual-only class without the mirror: the host default", spec: func(s *corev1.PersistentVolumeClaimSpec) { s.StorageClassName = ptr.To("nfs-team-b") },
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return h.StorageClassName == nil }},
		{what: "clone of an own claim", spec: func(s *corev1.PersistentVolumeClaimSpec) {
			s.DataSource = &corev1.TypedLocalObjectReference{Kind: Kind, Name: "data"}
		}, check: func(h corev1.PersistentVolumeClaimSpec) bool {
			return h.DataSource.Name == names.HostName("shop", "data") && h.DataSourceRef.Name == h.DataSource.Name
		}},
		{what: "clone whose host twin belongs to another namespace", spec: func(s *corev1.PersistentVolumeClaimSpec) {
			s.DataSource = &corev1.TypedLocalObjectReference{Kind: Kind, Name: "stolen"}
		}, refused: "is not the copy of"},
		{what: "cross-namespace dataSourceRef", spec: func(s *corev1.PersistentVolumeClaimSpec) {
			s.DataSourceRef = &corev1.TypedObjectReference{Kind: Kind, Name: "data-demo-0", Namespace: ptr.To("vc-demo")}
		}, refused: "spec.dataSourceRef.namespace"},
		{what: "snapshot source", spec: func(s *corev1.PersistentVolumeClaimSpec) {
			s.DataSourceRef = &corev1.TypedObjectReference{APIGroup: ptr.To("snapshot.storage.k8s.io"), Kind: "VolumeSnapshot", Name: "etcd"}
		}, refused: "spec.dataSourceRef"},
		{what: "attributes class is left out", spec: func(s *corev1.PersistentVolumeClaimSpec) { s.VolumeAttributesClassName = ptr.To("gold") },
			check: func(h corev1.PersistentVolumeClaimSpec) bool { return h.VolumeAttributesClassName == nil }},
	}
	for _, c := range cases {
		flags := c.flags
		s := New(&syncer.Pair{Config: &flags, Names: names, Host: host, HostReader: host, Virtual: virtual}).Syncer.(*Syncer)
		h, why, err := s.hostSpec(t.Context(), claim(c.spec))
		switch {
		case err != nil:
			t.Errorf("%s: %v", c.what, err)
		case c.refused != "" && !strings.Contains(string(why), c.refused):
			t.Errorf("%s: refusal %q, want one naming %q", c.what, why, c.refused)
		case c.refused == "" && why != "":
			t.Errorf("%s: refused: %s", c.what, why)
		case c.check != nil && !c.check(h):
			t.Errorf("%s: host spec %+v", c.what, h)
		}
	}
}
