package controller

import (
	"context"
	"errors"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/patch"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kuberecorder "k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
)

// HostClusterReconciler checks each HostCluster every spec.interval: that
// its kubeconfig is usable and the host answers, and what the host's
// version, service CIDR and node-port range are. It writes nothing but the
// HostCluster's status (the detection's refused probes write nothing on the
// host), and never a credential.
//
// On a sharded reconciler it checks only the HostClusters its
// --watch-label-selector matches, as for Fleets (Flux's convention: the
// reconciler that watches `!sharding.fluxcd.io/key` checks the unlabelled
// ones), so each HostCluster's status has one writer. Any shard's Fleets
// may still place clusters on any HostCluster of their namespace.
type HostClusterReconciler struct {
	client.Client
	Hosts         *hostRegistry
	EventRecorder kuberecorder.EventRecorder
	// Shard is the reconciler's --watch-label-selector; nil: every
	// HostCluster.
	Shard labels.Selector
}

// checks says whether this reconciler checks the HostCluster.
func (r *HostClusterReconciler) checks(obj client.Object) bool {
	return r.Shard == nil || r.Shard.Matches(labels.Set(obj.GetLabels()))
}

// unreadyRecheck is how soon a host that did not answer is checked again
// (its interval when shorter).
const unreadyRecheck = 10 * time.Second

// Reconcile checks one HostCluster.
func (r *HostClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	hc := &v1alpha1.HostCluster{}
	if err := r.Get(ctx, req.NamespacedName, hc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.checks(hc) {
		return ctrl.Result{}, nil // another shard's
	}
	patcher := patch.NewSerialPatcher(hc, r.Client)
	defer func() {
		hc.Status.ObservedGeneration = hc.Generation
		err := patcher.Patch(ctx, hc, patch.WithOwnedConditions{Conditions: []string{meta.ReadyCondition}}, patch.WithFieldOwner(apply.FieldManager))
		retErr = kerrors.NewAggregate([]error{retErr, kerrors.FilterOut(err, apierrors.IsNotFound)})
	}()
	wasReady := conditions.IsReady(hc)
	now := metav1.Now()
	hc.Status.LastCheckedAt = &now
	facts, err := r.check(ctx, hc)
	if err != nil {
		reason := v1alpha1.HostUnreachableReason
		if errors.Is(err, errInvalidKubeconfig) {
			reason = v1alpha1.InvalidConfigurationReason
		}
		hc.Status.LastError = err.Error()
		conditions.MarkFalse(hc, meta.ReadyCondition, reason, "%s", err.Error())
		if wasReady || conditions.GetReason(hc, meta.ReadyCondition) != reason {
			r.EventRecorder.Event(hc, corev1.EventTypeWarning, reason, err.Error())
		}
		return ctrl.Result{RequeueAfter: min(hc.GetInterval(), unreadyRecheck)}, nil
	}
	hc.Status.LastError = ""
	hc.Status.ServerVersion, hc.Status.ServiceCIDR, hc.Status.NodePortRange = facts.version, facts.serviceCIDR, facts.nodePorts
	conditions.MarkTrue(hc, meta.ReadyCondition, meta.SucceededReason, "host answers: Kubernetes %s, service CIDR %s, node ports %s",
		facts.version, facts.serviceCIDR, facts.nodePorts)
	if !wasReady {
		r.EventRecorder.Event(hc, corev1.EventTypeNormal, meta.SucceededReason, conditions.GetMessage(hc, meta.ReadyCondition))
	}
	return ctrl.Result{RequeueAfter: jitter.JitteredIntervalDuration(hc.GetInterval())}, nil
}

func (r *HostClusterReconciler) check(ctx context.Context, hc *v1alpha1.HostCluster) (hostFacts, error) {
	conn, err := r.Hosts.open(ctx, hc)
	if err != nil {
		return hostFacts{}, err
	}
	return detect(ctx, conn)
}

// SetupWithManager registers the HostCluster controller: a HostCluster is
// checked when its spec changes (or its labels move it to this shard) and
// every spec.interval.
func (r *HostClusterReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	changed := predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		Named("hostcluster").
		For(&v1alpha1.HostCluster{}, builder.WithPredicates(changed, predicate.NewPredicateFuncs(r.checks))).
		WithOptions(opts).
		Complete(r)
}

// setupHosts makes the registry of hosts (the local one reached through
// applyClient) and registers the HostCluster controller, which writes
// through writer.
func setupHosts(mgr ctrl.Manager, restConfig *rest.Config, applyClient client.Client, leading func(context.Context) error,
	writer client.Client, recorder kuberecorder.EventRecorder, shard labels.Selector, opts controller.Options) (*hostRegistry, error) {
	localKube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	hosts := &hostRegistry{
		local:  &hostConn{name: v1alpha1.LocalHost, client: applyClient, kube: localKube},
		reader: mgr.GetAPIReader(), scheme: mgr.GetScheme(), base: restConfig, leading: leading,
	}
	r := &HostClusterReconciler{Client: writer, Hosts: hosts, EventRecorder: recorder, Shard: shard}
	return hosts, r.SetupWithManager(mgr, opts)
}

// fleetsOfHost maps a HostCluster to the Fleets of its namespace, so a
// host that becomes Ready (or changes) is reconciled onto at once.
func fleetsOfHost(reader client.Reader) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var fleets v1alpha1.FleetList
		if err := reader.List(ctx, &fleets, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(fleets.Items))
		for _, f := range fleets.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&f)})
		}
		return out
	}
}
