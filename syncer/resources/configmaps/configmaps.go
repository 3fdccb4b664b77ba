// Package configs copies virtual ConfigMaps and Secrets to the host only
// while a synced pod uses them (mounts, environment, image pull secrets, the
// root CA bundle of projected tokens) or, with --sync-ingresses, a synced
// Ingress names them for TLS, and removes the copies when the last user is
// gone.
//
// It never copies an object no accepted pod references, never turns a
// virtual secret into a host service-account token, and never changes or
// deletes a host object it did not create.
package configmaps

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/resources/ingresses"
	"github.com/warren-dev/warren/syncer/translate"
)

// Indexes of virtual pods by the ConfigMaps and Secrets they use.
const (
	ConfigMapIndex = "warren.dev/configmaps"
	SecretIndex    = "warren.dev/secrets"
)

// IndexPods registers the indexes. accept tells which pods are synced; a
// refused pod keeps nothing on the host.
func IndexPods(ctx context.Context, mgr ctrl.Manager, accept func(*corev1.Pod) bool) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &corev1.Pod{}, ConfigMapIndex, func(o client.Object) []string {
		p := o.(*corev1.Pod)
		if !accept(p) {
			return nil
		}
		cms, _ := References(p)
		return cms
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &corev1.Pod{}, SecretIndex, func(o client.Object) []string {
		p := o.(*corev1.Pod)
		if !accept(p) {
			return nil
		}
		_, secrets := References(p)
		return secrets
	})
}

// References lists the ConfigMaps and Secrets a pod uses.
func References(p *corev1.Pod) (configMaps, secrets []string) {
	cm, sec := map[string]bool{}, map[string]bool{}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cm[v.ConfigMap.Name] = true
		case v.Secret != nil:
			sec[v.Secret.SecretName] = true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					cm[s.ConfigMap.Name] = true
				}
				if s.Secret != nil {
					sec[s.Secret.Name] = true
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...)
	for _, c := range containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				cm[e.ValueFrom.ConfigMapKeyRef.Name] = true
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				sec[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				cm[e.ConfigMapRef.Name] = true
			}
			if e.SecretRef != nil {
				sec[e.SecretRef.Name] = true
			}
		}
	}
	for _, s := range p.Spec.ImagePullSecrets {
		sec[s.Name] = true
	}
	delete(cm, "")
	delete(sec, "")
	return keys(cm), keys(sec)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// kindOps is what differs between ConfigMaps and Secrets.
type kindOps struct {
	kind  string
	index string
	new   func() client.Object
	refs  func(*corev1.Pod) []string
	// copyData copies the payload of v into h; it reports whether h changed.
	copyData func(v, h client.Object) bool
}

// Syncer reconciles one virtual ConfigMap or Secret per request.
type Syncer struct {
	*syncer.Pair
	ops kindOps
}

// ConfigMaps syncs ConfigMaps.
func ConfigMaps(p *syncer.Pair) *Syncer {
	return &Syncer{Pair: p, ops: kindOps{
		kind: "ConfigMap", index: ConfigMapIndex,
		new:  func() client.Object { return &corev1.ConfigMap{} },
		refs: func(pod *corev1.Pod) []string { cms, _ := References(pod); return cms },
		copyData: func(v, h client.Object) bool {
			vc, hc := v.(*corev1.ConfigMap), h.(*corev1.ConfigMap)
			if maps.Equal(vc.Data, hc.Data) && equality.Semantic.DeepEqual(vc.BinaryData, hc.BinaryData) {
				return false
			}
			hc.Data, hc.BinaryData = vc.Data, vc.BinaryData
			return true
		},
	}}
}

// Secrets syncs Secrets.
func Secrets(p *syncer.Pair) *Syncer {
	return &Syncer{Pair: p, ops: kindOps{
		kind: "Secret", index: SecretIndex,
		new:  func() client.Object { return &corev1.Secret{} },
		refs: func(pod *corev1.Pod) []string { _, secrets := References(pod); return secrets },
		copyData: func(v, h client.Object) bool {
			vs, hs := v.(*corev1.Secret), h.(*corev1.Secret)
			typ := vs.Type
			if typ == corev1.SecretTypeServiceAccountToken {
				typ = corev1.SecretTypeOpaque // a virtual token, not a host one
			}
			if hs.Type == "" {
				hs.Type = typ
			}
			if equality.Semantic.DeepEqual(vs.Data, hs.Data) {
				return false
			}
			hs.Data = vs.Data
			return true
		},
	}}
}

// tlsUsers says whether TLS Secrets of synced Ingresses count as used.
func (s *Syncer) tlsUsers() bool { return s.ops.kind == "Secret" && s.Config.SyncIngresses }

// SetupWithManager registers the syncer.
func (s *Syncer) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr)
	if s.tlsUsers() {
		b = b.Watches(&networkingv1.Ingress{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			var out []reconcile.Request
			for _, name := range ingresses.TLSSecrets(o.(*networkingv1.Ingress)) {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
			}
			return out
		}))
	}
	return b.
		Named(map[string]string{"ConfigMap": "configmap", "Secret": "secret"}[s.ops.kind]).
		For(s.ops.new()).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			p := o.(*corev1.Pod)
			var out []reconcile.Request
			for _, name := range s.ops.refs(p) {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: p.Namespace, Name: name}})
			}
			return out
		})).
		WatchesRawSource(s.WatchHost(s.ops.new(), s.ops.kind)).
		Complete(s)
}

// Reconcile keeps the host copy exactly while the object is used.
func (s *Syncer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	kind := s.ops.kind
	v, h, found, foreign, err := syncer.Twins(ctx, s.Pair, kind, req.NamespacedName, s.ops.new)
	if err != nil {
		return reconcile.Result{}, err
	}
	if foreign {
		return reconcile.Result{RequeueAfter: syncer.ConflictRetry}, nil
	}
	used := false // one user is enough to know (and cheap to find)
	if v != nil && v.GetDeletionTimestamp() == nil {
		var pods corev1.PodList
		if err := s.Virtual.List(ctx, &pods, client.InNamespace(req.Namespace), client.MatchingFields{s.ops.index: req.Name}, client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
			return reconcile.Result{}, fmt.Errorf("listing pods using %s %s: %w", kind, req.NamespacedName, err)
		}
		used = len(pods.Items) > 0
		if !used && s.tlsUsers() {
			var ings networkingv1.IngressList
			if err := s.Virtual.List(ctx, &ings, client.InNamespace(req.Namespace), client.MatchingFields{ingresses.SecretIndex: req.Name}, client.Limit(1), client.UnsafeDisableDeepCopy); err != nil {
				return reconcile.Result{}, fmt.Errorf("listing ingresses using %s: %w", req.NamespacedName, err)
			}
			used = len(ings.Items) > 0
		}
	}
	if !used {
		if !found {
			return reconcile.Result{}, nil
		}
		if v == nil {
			if gone, err := s.VirtualGone(ctx, req.NamespacedName, s.ops.new()); !gone {
				return syncer.Requeue(time.Second, err)
			}
		}
		return reconcile.Result{}, s.DeleteHost(ctx, kind, h)
	}

	if !found {
		h = s.ops.new()
		h.SetName(s.Names.HostName(req.Namespace, req.Name))
		h.SetLabels(translate.HostLabels(v.GetLabels()))
		s.Names.Mark(h, translate.Origin{Kind: kind, Namespace: req.Namespace, Name: req.Name, UID: string(v.GetUID())})
		s.ops.copyData(v, h)
		if err := s.CreateHost(ctx, kind, v, h); err != nil && err != syncer.ErrConflict {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}
	next := h.DeepCopyObject().(client.Object)
	next.SetLabels(translate.HostLabels(v.GetLabels()))
	s.Names.Mark(next, translate.Origin{Kind: kind, Namespace: req.Namespace, Name: req.Name, UID: string(v.GetUID())})
	changed := s.ops.copyData(v, next)
	if !changed && maps.Equal(next.GetLabels(), h.GetLabels()) && maps.Equal(next.GetAnnotations(), h.GetAnnotations()) {
		return reconcile.Result{}, nil
	}
	if err := s.Host.Update(ctx, next); err != nil && !apierrors.IsNotFound(err) {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("updating host %s %s: %w", kind, h.GetName(), err)
	}
	return reconcile.Result{}, nil
}
