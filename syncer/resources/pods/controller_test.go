package pods

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestDownIgnoresBindingAndStatusWrites(t *testing.T) {
	old := tenantPod()
	bound := old.DeepCopy()
	bound.Spec.NodeName = "kwok-node-0"
	bound.Status.Phase = corev1.PodRunning
	bound.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	if downChanged(old, bound) {
		t.Error("binding and status alone woke the down queue")
	}
	for name, change := range map[string]func(*corev1.Pod){
		"label":      func(p *corev1.Pod) { p.Labels["tier"] = "front" },
		"annotation": func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} },
		"image":      func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:2" },
		"generation": func(p *corev1.Pod) { p.Generation++ },
		"deletion":   func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{Time: time.Now()} },
		"gates": func(p *corev1.Pod) {
			old.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}}
			p.Spec.SchedulingGates = nil
		},
	} {
		next := old.DeepCopy()
		change(next)
		if !downChanged(old, next) {
			t.Errorf("a %s change did not wake the down queue", name)
		}
		old.Spec.SchedulingGates = nil
	}
}

func TestBindingAloneCarriesAScheduledHostPod(t *testing.T) {
	v := tenantPod()
	v.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: corev1.PodQOSBestEffort}
	h := v.DeepCopy()
	h.Spec.NodeName = "kwok-node-0"
	h.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	if !sameStatus(boundStatus(v.Status), virtualStatus(v, h)) {
		t.Error("a host pod that is only scheduled needs a status write besides the binding")
	}
	h.Status.Phase = corev1.PodRunning
	if sameStatus(boundStatus(v.Status), virtualStatus(v, h)) {
		t.Error("a running host pod was taken for one that is only scheduled")
	}
}

func TestMemoBelongsToOnePod(t *testing.T) {
	var m memo
	key := types.NamespacedName{Namespace: "shop", Name: "web-0"}
	m.update(key, "u-1", func(p *podMemo) { p.boundToNode = "n1" })
	if got := m.get(key, "u-1").boundToNode; got != "n1" {
		t.Errorf("bound to %q, want n1", got)
	}
	if got := m.get(key, "u-2").boundToNode; got != "" {
		t.Errorf("a new pod of the same name inherited the binding to %q", got)
	}
	m.update(key, "u-2", func(p *podMemo) { p.tokensRefresh = time.Now() })
	if got := m.get(key, "u-2").boundToNode; got != "" {
		t.Errorf("the new pod kept the old pod's binding to %q", got)
	}
	m.forget(key)
	if got := m.get(key, "u-2"); !got.tokensRefresh.IsZero() {
		t.Error("a forgotten pod is still remembered")
	}
}
