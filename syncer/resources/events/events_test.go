package events

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/synctest"
)

func TestHostEventsAboutTwinsComeUpInTheTenantsNames(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "u-web-0"}}
	twin := synctest.Twin("Pod", pod, &corev1.Pod{})
	stranger := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "platform-agent", Namespace: synctest.HostNamespace}}
	seen := metav1.NewTime(time.Now().Truncate(time.Second))
	hostEvent := func(about *corev1.Pod, count int32) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: about.Name + ".1", Namespace: synctest.HostNamespace},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: synctest.HostNamespace, Name: about.Name},
			Reason:         "BackOff", Type: corev1.EventTypeWarning, Count: count, LastTimestamp: seen,
			Message: "Back-off restarting failed container in pod " + synctest.HostNamespace + "/" + about.Name,
		}
	}
	virtualEvent := func(count int32) *corev1.Event {
		e := hostEvent(twin, count)
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: eventName("web-0", e.Name), Namespace: "shop"},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "shop", Name: "web-0", UID: "u-web-0"},
			Reason:         e.Reason, Type: e.Type, Count: count, LastTimestamp: seen,
			Message: "Back-off restarting failed container in pod shop/web-0",
		}
	}
	key := func(e *corev1.Event) types.NamespacedName { return client.ObjectKeyFromObject(e) }
	synctest.Run(t, func(p *syncer.Pair) reconcile.Reconciler { return &Syncer{Pair: p} }, []synctest.Case{{
		Name:           "an event about a twin is told about the virtual pod, in its names",
		InitialVirtual: []client.Object{pod}, InitialHost: []client.Object{twin, hostEvent(twin, 1)}, Request: key(hostEvent(twin, 1)),
		ExpectedVirtual: []client.Object{pod, virtualEvent(1)},
		ExpectedHost:    []client.Object{twin, hostEvent(twin, 1)},
	}, {
		Name:           "a repeat updates the one virtual event",
		InitialVirtual: []client.Object{pod, virtualEvent(1)}, InitialHost: []client.Object{twin, hostEvent(twin, 3)}, Request: key(hostEvent(twin, 3)),
		ExpectedVirtual: []client.Object{pod, virtualEvent(3)},
		ExpectedHost:    []client.Object{twin, hostEvent(twin, 3)},
	}, {
		Name:           "an event about a host object that is not a twin stays on the host",
		InitialVirtual: []client.Object{pod}, InitialHost: []client.Object{stranger, hostEvent(stranger, 1)}, Request: key(hostEvent(stranger, 1)),
		ExpectedVirtual: []client.Object{pod},
		ExpectedHost:    []client.Object{stranger, hostEvent(stranger, 1)},
	}})
}
