package controller

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	kuberecorder "k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/render"
)

// ReadinessReconciler reports whether each VirtualCluster's control plane
// runs (its Ready condition) and where tenants reach it (its endpoint). It
// only reads host objects; it writes nothing but VirtualCluster status.
type ReadinessReconciler struct {
	client.Client
	EventRecorder kuberecorder.EventRecorder
	// Shard, on a sharded reconciler, limits it to the clusters of the
	// Fleets in its cache (ofThisShard). Nil: every cluster.
	Shard labels.Selector
	// Hosts reaches clusters on remote hosts; only local ones are looked
	// at when nil.
	Hosts *hostRegistry
}

// remoteRecheck is how often a cluster on a remote host is looked at
// again: its StatefulSet there is not watched. remoteRecheckReady is the
// same once it is Ready.
const (
	remoteRecheck      = 5 * time.Second
	remoteRecheckReady = time.Minute
)

// Reconcile updates one VirtualCluster's readiness.
func (r *ReadinessReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if ours, err := r.ofThisShard(ctx, req.Name); !ours || err != nil {
		return ctrl.Result{}, err
	}
	w := clusterStatusWriter{client: r.Client, changed: func(before, after *v1alpha1.VirtualCluster) {
		if conditions.IsReady(after) && !conditions.IsReady(before) {
			r.EventRecorder.Event(after, corev1.EventTypeNormal, "Ready", conditions.GetMessage(after, v1alpha1.ReadyCondition))
		}
	}}
	var result ctrl.Result
	err := w.write(ctx, req.Name, func(vc *v1alpha1.VirtualCluster) error {
		if !vc.DeletionTimestamp.IsZero() {
			return nil
		}
		host := v1alpha1.HostOf(vc.Spec)
		if host == v1alpha1.LocalHost || r.Hosts == nil {
			return r.observe(ctx, r.Client, vc, render.NamesFor(vc))
		}
		result.RequeueAfter = remoteRecheck
		conn, _, err := r.Hosts.connect(ctx, vc.Labels[v1alpha1.FleetNamespaceLabel], host)
		if err == nil {
			err = r.observe(ctx, conn.client, vc, render.NamesFor(vc))
		}
		if err != nil {
			conditions.MarkUnknown(vc, v1alpha1.ReadyCondition, v1alpha1.HostUnreachableReason, "host %s: %s", host, err)
		} else if conditions.IsReady(vc) {
			result.RequeueAfter = remoteRecheckReady
		}
		return nil
	})
	return result, err
}

func (r *ReadinessReconciler) observe(ctx context.Context, host client.Reader, vc *v1alpha1.VirtualCluster, names render.Names) error {
	var sts appsv1.StatefulSet
	err := host.Get(ctx, client.ObjectKey{Namespace: names.Namespace, Name: names.StatefulSet}, &sts)
	switch {
	case apierrors.IsNotFound(err):
		conditions.MarkFalse(vc, v1alpha1.ReadyCondition, v1alpha1.NotAppliedReason, "control plane StatefulSet %s/%s does not exist yet", names.Namespace, names.StatefulSet)
		return nil
	case err != nil:
		return err
	}
	want := int32(1)
	if sts.Spec.Replicas != nil {
		want = *sts.Spec.Replicas
	}
	switch {
	case vc.Spec.Paused && want == 0 && sts.Status.Replicas == 0:
		conditions.MarkFalse(vc, v1alpha1.ReadyCondition, v1alpha1.PausedReason, "control plane scaled to zero; its data is kept")
	case sts.Status.ObservedGeneration < sts.Generation:
		conditions.MarkFalse(vc, v1alpha1.ReadyCondition, meta.ProgressingReason, "control plane StatefulSet %s/%s: change not observed yet", names.Namespace, names.StatefulSet)
	case want > 0 && sts.Status.ReadyReplicas >= want && sts.Status.UpdatedReplicas >= want:
		conditions.MarkTrue(vc, v1alpha1.ReadyCondition, v1alpha1.ControlPlaneReadyReason, "control plane StatefulSet %s/%s ready", names.Namespace, names.StatefulSet)
	default:
		conditions.MarkFalse(vc, v1alpha1.ReadyCondition, meta.ProgressingReason, "control plane StatefulSet %s/%s: %d of %d replicas ready", names.Namespace, names.StatefulSet, sts.Status.ReadyReplicas, want)
	}
	vc.Status.Endpoint = endpoint(ctx, host, vc, names)
	return nil
}

// endpoint is the API server URL the cluster's expose setting gives tenants;
// empty while it is not known yet (a LoadBalancer without an address).
func endpoint(ctx context.Context, host client.Reader, vc *v1alpha1.VirtualCluster, names render.Names) string {
	inHost := fmt.Sprintf("https://%s.%s.svc:443", names.Service, names.Namespace)
	switch vc.Spec.Expose.Type {
	case v1alpha1.ExposeIngress:
		if vc.Spec.Expose.Host != "" {
			return "https://" + vc.Spec.Expose.Host
		}
	case v1alpha1.ExposeLoadBalancer, v1alpha1.ExposeNodePort:
		var svc corev1.Service
		if err := host.Get(ctx, client.ObjectKey{Namespace: names.Namespace, Name: names.Service}, &svc); err != nil {
			return ""
		}
		if vc.Spec.Expose.Type == v1alpha1.ExposeLoadBalancer {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				if ing.Hostname != "" {
					return "https://" + ing.Hostname
				}
				if ing.IP != "" {
					return "https://" + ing.IP
				}
			}
			return ""
		}
		for _, port := range svc.Spec.Ports {
			if port.NodePort != 0 {
				if addr := nodeAddress(ctx, host); addr != "" {
					return fmt.Sprintf("https://%s", net.JoinHostPort(addr, strconv.Itoa(int(port.NodePort))))
				}
			}
		}
		return ""
	}
	return inHost
}

// nodeAddress is an address of a Ready node, preferring external ones.
func nodeAddress(ctx context.Context, host client.Reader) string {
	var nodes corev1.NodeList
	if err := host.List(ctx, &nodes); err != nil {
		return ""
	}
	for _, want := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		for _, n := range nodes.Items {
			for _, a := range n.Status.Addresses {
				if a.Type == want && a.Address != "" {
					return a.Address
				}
			}
		}
	}
	return ""
}
