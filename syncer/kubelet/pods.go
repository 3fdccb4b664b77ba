package kubelet

import (
	"context"
	"errors"
	"fmt"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// target is a virtual pod's host twin, which relayed calls address.
type target struct {
	// Namespace and Name identify the virtual pod (for logs).
	Namespace, Name string
	// HostNamespace and HostName identify its host twin.
	HostNamespace, HostName string
	// container is the container the request names, if any.
	container string
}

// resolve finds the host twin of the virtual pod namespace/name (of UID uid,
// when the request names one). Both reads are of the caches, so a refusal
// costs neither API server a request. The twin must carry this cluster's
// ownership marks for exactly that virtual pod, UID included: a host pod of
// another cluster, a host pod of this one that stands for another virtual
// pod, or one left from an earlier pod of the same name is never reached.
func (s *Server) resolve(ctx context.Context, namespace, name, uid string) (*target, error) {
	if namespace == "" || name == "" {
		return nil, errors.New("no pod named")
	}
	virtual := &corev1.Pod{}
	if err := s.Virtual.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, virtual); err != nil {
		return nil, fmt.Errorf("virtual pod: %w", err)
	}
	if uid != "" && uid != string(virtual.UID) {
		return nil, fmt.Errorf("virtual pod has UID %s, not %s", virtual.UID, uid)
	}
	t := &target{Namespace: namespace, Name: name, HostNamespace: s.Names.HostNamespace, HostName: s.Names.HostName(namespace, name)}
	host := &corev1.Pod{}
	if err := s.Host.Get(ctx, types.NamespacedName{Namespace: t.HostNamespace, Name: t.HostName}, host); err != nil {
		return nil, fmt.Errorf("host twin: %w", err)
	}
	if !s.Names.Owns(host, "Pod", namespace, name) || host.Annotations[v1alpha1.OriginUIDAnnotation] != string(virtual.UID) {
		return nil, errors.New("the host pod of that name is not this virtual pod's twin")
	}
	if host.Spec.NodeName == "" {
		return nil, errors.New("the host twin is not scheduled yet")
	}
	return t, nil
}
