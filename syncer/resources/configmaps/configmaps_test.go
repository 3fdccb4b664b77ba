package configmaps

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestConfigMapsAreCopiedWhileAPodUsesThem(t *testing.T) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop", UID: "u-cm", Labels: map[string]string{"app": "web", "warren.dev/namespace": "forged"}},
		Data:       map[string]string{"mode": "fast"},
	}
	edited := cm.DeepCopy()
	edited.Data = map[string]string{"mode": "safe"}
	user := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}}},
	}
	otherNamespace := user.DeepCopy()
	otherNamespace.Namespace = "other"
	copyOf := func(v *corev1.ConfigMap) *corev1.ConfigMap {
		return synctest.Twin(Kind, cm, &corev1.ConfigMap{Data: v.Data})
	}
	key := types.NamespacedName{Namespace: "shop", Name: "settings"}
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return New(p) }, []synctest.Case{{
		Name:           "a used ConfigMap is copied, without reserved labels",
		InitialVirtual: []client.Object{cm, user}, Request: key,
		ExpectedVirtual: []client.Object{cm, user},
		ExpectedHost:    []client.Object{copyOf(cm)},
	}, {
		Name:           "an unused ConfigMap is not",
		InitialVirtual: []client.Object{cm, otherNamespace}, Request: key,
		ExpectedVirtual: []client.Object{cm, otherNamespace},
	}, {
		Name:           "an edit reaches the copy",
		InitialVirtual: []client.Object{edited, user}, InitialHost: []client.Object{copyOf(cm)}, Request: key,
		ExpectedVirtual: []client.Object{edited, user},
		ExpectedHost:    []client.Object{copyOf(edited)},
	}, {
		Name:           "the copy goes with the last user",
		InitialVirtual: []client.Object{cm}, InitialHost: []client.Object{copyOf(cm)}, Request: key,
		ExpectedVirtual: []client.Object{cm},
	}, {
		Name:        "the copy goes with the ConfigMap",
		InitialHost: []client.Object{copyOf(cm)}, InitialVirtual: []client.Object{user}, Request: key,
		ExpectedVirtual: []client.Object{user},
	}, {
		Name:           "a foreign object of the copy's name is left alone, and the tenant told",
		InitialVirtual: []client.Object{cm, user}, Request: key,
		InitialHost:     []client.Object{synctest.Foreign(cm, &corev1.ConfigMap{Data: map[string]string{"theirs": "x"}})},
		ExpectedVirtual: []client.Object{cm, user},
		ExpectedHost:    []client.Object{synctest.Foreign(cm, &corev1.ConfigMap{Data: map[string]string{"theirs": "x"}})},
		Events:          []string{"HostNameConflict"},
	}})
}
