package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Ref is a virtual object that another virtual object refers to by name (a
// pod's Secret volume, a claim's data source, a slice's Service).
type Ref struct {
	Kind      string // "Secret", "ConfigMap", "PersistentVolumeClaim" or "Service"
	Namespace string
	Name      string
	Field     string // where the reference is, for the tenant: "spec.volumes[2].secret"
}

// refKinds are the kinds references can name, and their host objects.
var refKinds = map[string]func() client.Object{
	"Secret":                func() client.Object { return &corev1.Secret{} },
	"ConfigMap":             func() client.Object { return &corev1.ConfigMap{} },
	"PersistentVolumeClaim": func() client.Object { return &corev1.PersistentVolumeClaim{} },
	"Service":               func() client.Object { return &corev1.Service{} },
}

// RefError says a reference would reach a host object that is not the
// twin of the virtual object it names.
type RefError struct {
	Ref      Ref
	HostName string
}

func (e *RefError) Error() string {
	return fmt.Sprintf("%s: the host %s %q is not the copy of %s %s/%s; nothing was written",
		e.Ref.Field, e.Ref.Kind, e.HostName, e.Ref.Kind, e.Ref.Namespace, e.Ref.Name)
}

// HostRef translates a reference to the host name it must use, after
// checking that the host object of that name, if there is one, is the
// syncer's twin of exactly that virtual object (kind, namespace, name, as
// its origin annotations say). A name that no host object holds yet is
// fine: only the syncer makes objects of such names, and it makes them as
// twins. Every kind that writes a host reference calls this (or CheckRefs)
// before the write, so no translation, however it maps names, can point a
// host object at something that is not its tenant's own.
func (p *Pair) HostRef(ctx context.Context, r Ref) (string, error) {
	name := p.Names.HostName(r.Namespace, r.Name)
	newObj, ok := refKinds[r.Kind]
	if !ok {
		return "", fmt.Errorf("%s: references to a %s are not synced", r.Field, r.Kind)
	}
	key := types.NamespacedName{Namespace: p.Names.HostNamespace, Name: name}
	obj := newObj()
	err := p.Host.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		// Not among this cluster's synced objects: a foreign object of
		// that name would not be in the cache, so ask the API (metadata
		// only: never a foreign Secret's data).
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(r.Kind))
		err = p.HostReader.Get(ctx, key, meta)
		if apierrors.IsNotFound(err) {
			return name, nil
		}
		obj = meta
	}
	if err != nil {
		return "", fmt.Errorf("checking host %s %s for %s: %w", r.Kind, name, r.Field, err)
	}
	if !p.Names.Owns(obj, r.Kind, r.Namespace, r.Name) {
		return "", &RefError{Ref: r, HostName: name}
	}
	return name, nil
}

// CheckRefs runs HostRef on every reference; the first that fails is the
// error.
func (p *Pair) CheckRefs(ctx context.Context, refs []Ref) error {
	for _, r := range refs {
		if _, err := p.HostRef(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// RefReason is the tenant-readable reason of a failed reference check, or
// "" when err is not one.
func RefReason(err error) string {
	var re *RefError
	if !errors.As(err, &re) {
		return ""
	}
	return re.Error()
}

// Indexes of virtual objects by what they reference (the names of the
// referenced objects in the referrer's namespace).
const (
	PodConfigMapIndex  = "warren.dev/configmaps"
	PodSecretIndex     = "warren.dev/secrets"
	IngressSecretIndex = "warren.dev/tls-secrets"
)

// IndexPodRefs registers PodConfigMapIndex and PodSecretIndex. accept tells
// which pods are synced; a refused pod keeps nothing on the host.
func IndexPodRefs(ctx context.Context, mgr ctrl.Manager, accept func(*corev1.Pod) bool) error {
	for index, kind := range map[string]string{PodConfigMapIndex: "ConfigMap", PodSecretIndex: "Secret"} {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, index, PodRefIndex(kind, accept)); err != nil {
			return err
		}
	}
	return nil
}

// PodRefIndex indexes accepted pods by the names of the objects of kind
// they use.
func PodRefIndex(kind string, accept func(*corev1.Pod) bool) client.IndexerFunc {
	return func(o client.Object) []string {
		p := o.(*corev1.Pod)
		if !accept(p) {
			return nil
		}
		return RefNames(PodRefs(p), kind)
	}
}

// PodNodeIndex indexes virtual pods by the node they are bound to.
const PodNodeIndex = "spec.nodeName"

// IndexPodNodes registers PodNodeIndex.
func IndexPodNodes(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, PodNodeIndex, PodNodeIndexer)
}

// PodNodeIndexer is the node a pod is bound to, if any.
func PodNodeIndexer(o client.Object) []string {
	if n := o.(*corev1.Pod).Spec.NodeName; n != "" {
		return []string{n}
	}
	return nil
}

// IndexIngressRefs registers IngressSecretIndex.
func IndexIngressRefs(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &networkingv1.Ingress{}, IngressSecretIndex, IngressRefIndex)
}

// IngressRefIndex indexes Ingresses by the TLS Secrets they use.
func IngressRefIndex(o client.Object) []string {
	return RefNames(IngressRefs(o.(*networkingv1.Ingress)), "Secret")
}

// RefNames are the distinct names of the references of kind.
func RefNames(refs []Ref, kind string) []string {
	var out []string
	for _, r := range refs {
		if r.Kind == kind && r.Name != "" && !slices.Contains(out, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out
}

// PodRefs lists every virtual object a pod names and its host twin will
// name in translation: Secrets, ConfigMaps and claims in volumes (projected
// sources and generic ephemeral volumes too), environment and image pull
// secrets. Each is checked against its host twin's origin before the host
// pod is written.
func PodRefs(v *corev1.Pod) []Ref {
	ns := v.Namespace
	var refs []Ref
	add := func(kind, name, field string) {
		if name != "" {
			refs = append(refs, Ref{Kind: kind, Namespace: ns, Name: name, Field: field})
		}
	}
	for i, vol := range v.Spec.Volumes {
		f := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case vol.ConfigMap != nil:
			add("ConfigMap", vol.ConfigMap.Name, f+".configMap")
		case vol.Secret != nil:
			add("Secret", vol.Secret.SecretName, f+".secret")
		case vol.PersistentVolumeClaim != nil:
			add("PersistentVolumeClaim", vol.PersistentVolumeClaim.ClaimName, f+".persistentVolumeClaim")
		case vol.Ephemeral != nil:
			add("PersistentVolumeClaim", EphemeralClaimName(v, vol.Name), f+".ephemeral")
		case vol.Projected != nil:
			for j, src := range vol.Projected.Sources {
				if src.ConfigMap != nil {
					add("ConfigMap", src.ConfigMap.Name, fmt.Sprintf("%s.projected.sources[%d].configMap", f, j))
				}
				if src.Secret != nil {
					add("Secret", src.Secret.Name, fmt.Sprintf("%s.projected.sources[%d].secret", f, j))
				}
			}
		}
	}
	containers := func(field string, cs []corev1.Container) {
		for i, c := range cs {
			f := fmt.Sprintf("spec.%s[%d]", field, i)
			for j, e := range c.Env {
				if vf := e.ValueFrom; vf != nil && vf.ConfigMapKeyRef != nil {
					add("ConfigMap", vf.ConfigMapKeyRef.Name, fmt.Sprintf("%s.env[%d].valueFrom.configMapKeyRef", f, j))
				}
				if vf := e.ValueFrom; vf != nil && vf.SecretKeyRef != nil {
					add("Secret", vf.SecretKeyRef.Name, fmt.Sprintf("%s.env[%d].valueFrom.secretKeyRef", f, j))
				}
			}
			for j, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					add("ConfigMap", e.ConfigMapRef.Name, fmt.Sprintf("%s.envFrom[%d].configMapRef", f, j))
				}
				if e.SecretRef != nil {
					add("Secret", e.SecretRef.Name, fmt.Sprintf("%s.envFrom[%d].secretRef", f, j))
				}
			}
		}
	}
	containers("initContainers", v.Spec.InitContainers)
	containers("containers", v.Spec.Containers)
	for i, s := range v.Spec.ImagePullSecrets {
		add("Secret", s.Name, fmt.Sprintf("spec.imagePullSecrets[%d]", i))
	}
	return refs
}

// EphemeralClaimName is the claim the virtual cluster's ephemeral volume
// controller makes for a pod's generic ephemeral volume (Kubernetes' rule:
// the pod's name, a dash, the volume's name).
func EphemeralClaimName(pod *corev1.Pod, vol string) string { return pod.Name + "-" + vol }

// IngressRefs lists the Services and TLS Secrets an Ingress uses.
func IngressRefs(in *networkingv1.Ingress) []Ref {
	var refs []Ref
	backend := func(b *networkingv1.IngressBackend, field string) {
		if b != nil && b.Service != nil && b.Service.Name != "" {
			refs = append(refs, Ref{Kind: "Service", Namespace: in.Namespace, Name: b.Service.Name, Field: field + ".service"})
		}
	}
	backend(in.Spec.DefaultBackend, "spec.defaultBackend")
	for i, r := range in.Spec.Rules {
		if r.HTTP != nil {
			for j, p := range r.HTTP.Paths {
				backend(&p.Backend, fmt.Sprintf("spec.rules[%d].http.paths[%d].backend", i, j))
			}
		}
	}
	for i, t := range in.Spec.TLS {
		if t.SecretName != "" {
			refs = append(refs, Ref{Kind: "Secret", Namespace: in.Namespace, Name: t.SecretName, Field: fmt.Sprintf("spec.tls[%d].secretName", i)})
		}
	}
	return refs
}

// ServiceHasTwin reports whether a virtual Service has a host twin: not the
// virtual API's own default/kubernetes Service (pods reach that API through
// the host Service that serves it), not an ExternalName Service (resolved
// by the virtual DNS alone).
func ServiceHasTwin(v *corev1.Service) bool {
	if IsVirtualAPIService(v) {
		return false
	}
	return v.Spec.Type != corev1.ServiceTypeExternalName
}

// IsVirtualAPIService reports whether a virtual Service is the virtual API
// server's own "kubernetes" Service.
func IsVirtualAPIService(v *corev1.Service) bool {
	return v.Namespace == "default" && v.Name == "kubernetes"
}
