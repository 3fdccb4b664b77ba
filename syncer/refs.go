package syncer

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
