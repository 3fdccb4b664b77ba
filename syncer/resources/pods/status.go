package pods

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons and pod status reasons the syncer writes itself.
const (
	ReasonPodSecurity    = "PodSecurity"
	ReasonHostPodDeleted = "HostPodDeleted"
	// ReasonPlacement: tenant node choices the platform's placement drops.
	ReasonPlacement = "PlacementOutsidePolicy"
	// ReasonEphemeralContainers: ephemeral containers are not run.
	ReasonEphemeralContainers = "EphemeralContainersNotSupported"
)

// virtualStatus is the status the virtual pod should show for its host twin:
// what a kubelet would have reported. The QoS class stays the virtual
// API's (it is immutable) and generations are the virtual pod's.
func virtualStatus(v, h *corev1.Pod) corev1.PodStatus {
	s := *h.Status.DeepCopy()
	s.QOSClass = v.Status.QOSClass
	s.NominatedNodeName = ""
	s.ObservedGeneration = 0
	if h.Status.ObservedGeneration > 0 {
		s.ObservedGeneration = v.Generation
	}
	for i := range s.Conditions {
		if s.Conditions[i].ObservedGeneration > 0 {
			s.Conditions[i].ObservedGeneration = v.Generation
		}
	}
	// Readiness gates live only in the virtual cluster: keep the conditions
	// virtual controllers set, and only call the pod Ready when they hold.
	for _, gate := range v.Spec.ReadinessGates {
		if c := findCondition(v.Status.Conditions, gate.ConditionType); c != nil {
			s.Conditions = append(s.Conditions, *c)
			if c.Status != corev1.ConditionTrue {
				setCondition(&s, corev1.PodReady, corev1.ConditionFalse, "ReadinessGatesNotReady", "")
			}
		} else {
			setCondition(&s, corev1.PodReady, corev1.ConditionFalse, "ReadinessGatesNotReady", "")
		}
	}
	return s
}

// boundStatus is what the virtual API makes of a pod's status when the pod
// is bound: PodScheduled becomes true.
func boundStatus(s corev1.PodStatus) corev1.PodStatus {
	s = *s.DeepCopy()
	setCondition(&s, corev1.PodScheduled, corev1.ConditionTrue, "", "")
	return s
}

// refusedStatus marks a pod that the security checks refused.
func refusedStatus(v *corev1.Pod, reason string) corev1.PodStatus {
	s := *v.Status.DeepCopy()
	s.Reason = ReasonPodSecurity
	s.Message = "refused by the virtual cluster: " + reason
	setCondition(&s, corev1.PodScheduled, corev1.ConditionFalse, ReasonPodSecurity, s.Message)
	return s
}

// lostStatus is what a kubelet reports for a pod whose sandbox vanished: the
// pod failed, its containers terminated.
func lostStatus(v *corev1.Pod) corev1.PodStatus {
	s := *v.Status.DeepCopy()
	s.Phase = corev1.PodFailed
	s.Reason = ReasonHostPodDeleted
	s.Message = "the pod's host twin was deleted or evicted outside the virtual cluster"
	setCondition(&s, corev1.PodReady, corev1.ConditionFalse, ReasonHostPodDeleted, "")
	setCondition(&s, corev1.ContainersReady, corev1.ConditionFalse, ReasonHostPodDeleted, "")
	now := metav1.Now()
	for i := range s.ContainerStatuses {
		cs := &s.ContainerStatuses[i]
		cs.Ready = false
		if cs.State.Terminated == nil {
			cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 137, Reason: ReasonHostPodDeleted, FinishedAt: now,
			}}
		}
	}
	return s
}

func findCondition(cs []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, reason, message string) {
	c := findCondition(s.Conditions, t)
	if c == nil {
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t})
		c = &s.Conditions[len(s.Conditions)-1]
	}
	if c.Status != status {
		c.LastTransitionTime = metav1.Now()
	}
	c.Status, c.Reason, c.Message = status, reason, message
}
