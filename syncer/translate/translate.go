// Package translate owns every rule that maps a virtual object's identity to
// its host twin: the host name, the labels and annotations that record where a
// host object came from, and the selectors that find translated pods.
//
// It is pure: it never talks to an API server, and it must never produce a
// host name or selector that could reach outside the one host namespace or
// match objects of another virtual namespace or cluster.
package translate

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

const (
	// ReservedDomain is the label and annotation domain only warren writes:
	// keys "warren.dev/..." and "<anything>.warren.dev/..." are never copied
	// from a tenant's object to the host, so no tenant object can ever carry
	// (and so match a selector on) a key warren's own objects are found by.
	ReservedDomain = "warren.dev"
)

// Reserved reports whether a label or annotation key is in warren's domain:
// "warren.dev/..." or "<sub>.warren.dev/...". Keys are compared without
// regard to case, although the API only accepts lower-case prefixes.
func Reserved(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	prefix = strings.ToLower(prefix)
	return prefix == ReservedDomain || strings.HasSuffix(prefix, "."+ReservedDomain)
}

// MaxNameLength is the longest host name produced. 63 keeps every kind valid,
// including Services, whose names must be DNS labels.
const MaxNameLength = 63

// separator joins name, namespace and cluster in the readable host name.
const separator = "-x-"

// hashLength is the number of base32 digits of the SHA-256 suffix of
// shortened names: 26 digits carry 130 bits, so finding two identities with
// one suffix takes about 2^64 hashes even for a tenant choosing names freely.
const hashLength = 26

// hashEncoding writes the suffix in lower-case letters and digits only.
var hashEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Translator maps virtual identities to host identities for one cluster.
type Translator struct {
	Cluster       string // virtual cluster name
	HostNamespace string // the one host namespace everything lands in
}

// HostName is the host name of the virtual object namespace/name:
// "<name>-x-<namespace>-x-<cluster>" when that fits in 63 characters and
// reads back one way only (the separator occurs exactly twice, counting
// overlapping occurrences, so "db-x"/"n" and "db"/"x-n", both
// "db-x-x-n-x-<cluster>", are never readable). Otherwise it is a prefix of
// the readable form and a hash of the full identity. The result is
// injective: two readable names differ because each reads back to its own
// identity; a hashed name equals a readable one only if its 26 digits equal
// the fixed tail every readable name of this cluster ends in (a 130-bit
// preimage; with a cluster name under 26 characters the tail holds "-x-",
// which no hash contains); and two hashed names differ unless SHA-256
// collides on 130 bits.
func (t Translator) HostName(namespace, name string) string {
	full := name + separator + namespace + separator + t.Cluster
	if len(full) <= MaxNameLength && countOverlapping(full, separator) == 2 {
		return full
	}
	return shorten(full, "object", namespace, name, t.Cluster)
}

// DerivedName names a host object the syncer makes for a virtual object but
// which has no virtual twin of its own kind (for example a pod's token
// Secret). It is always hashed, over an identity that starts with "derived"
// and the purpose, so it never equals a HostName.
func (t Translator) DerivedName(purpose, namespace, name string) string {
	return shorten(purpose+"-"+name, "derived", purpose, namespace, name, t.Cluster)
}

// countOverlapping counts the occurrences of sep in s, overlapping ones too.
func countOverlapping(s, sep string) int {
	n := 0
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			n++
		}
	}
	return n
}

// shorten keeps as much of readable as fits and appends a hash of the
// identity parts. The parts are joined with NUL, which no Kubernetes name
// contains, so different part lists never hash the same input.
func shorten(readable string, identity ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(identity, "\x00")))
	suffix := "-" + hashEncoding.EncodeToString(sum[:])[:hashLength]
	prefix := readable
	if keep := MaxNameLength - len(suffix); len(prefix) > keep {
		prefix = prefix[:keep]
	}
	// A name must start and end with an alphanumeric character; the suffix
	// ends with one, so only the join needs care.
	prefix = strings.TrimRight(prefix, "-.")
	if prefix == "" {
		return "h" + suffix
	}
	return prefix + suffix
}

// Origin says which virtual object a host object stands for.
type Origin struct {
	Kind      string // Kind of the virtual object, e.g. "Pod"
	Namespace string // virtual namespace ("" for cluster-scoped)
	Name      string
	UID       string // optional
}

// Mark writes the ownership labels and annotations for o onto host.
func (t Translator) Mark(host metav1.Object, o Origin) {
	labels := host.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1alpha1.ClusterLabel] = t.Cluster
	labels[v1alpha1.SyncerManagedByLabel] = v1alpha1.SyncerManagedByValue
	if o.Namespace != "" {
		labels[v1alpha1.SyncerNamespaceLabel] = o.Namespace
	}
	host.SetLabels(labels)
	annotations := host.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[v1alpha1.OriginClusterAnnotation] = t.Cluster
	annotations[v1alpha1.OriginKindAnnotation] = o.Kind
	annotations[v1alpha1.OriginNamespaceAnnotation] = o.Namespace
	annotations[v1alpha1.OriginNameAnnotation] = o.Name
	if o.UID != "" {
		annotations[v1alpha1.OriginUIDAnnotation] = o.UID
	}
	host.SetAnnotations(annotations)
}

// OriginOf reads the origin of a host object. ok is false unless the object
// carries this cluster's complete ownership marks; such objects are foreign
// and must never be changed or deleted.
func (t Translator) OriginOf(host metav1.Object) (o Origin, ok bool) {
	labels, annotations := host.GetLabels(), host.GetAnnotations()
	if labels[v1alpha1.SyncerManagedByLabel] != v1alpha1.SyncerManagedByValue || labels[v1alpha1.ClusterLabel] != t.Cluster ||
		annotations[v1alpha1.OriginClusterAnnotation] != t.Cluster || host.GetNamespace() != t.HostNamespace {
		return Origin{}, false
	}
	o = Origin{
		Kind:      annotations[v1alpha1.OriginKindAnnotation],
		Namespace: annotations[v1alpha1.OriginNamespaceAnnotation],
		Name:      annotations[v1alpha1.OriginNameAnnotation],
		UID:       annotations[v1alpha1.OriginUIDAnnotation],
	}
	if o.Kind == "" || o.Name == "" || labels[v1alpha1.SyncerNamespaceLabel] != o.Namespace {
		return Origin{}, false
	}
	return o, true
}

// Owns reports whether host is the syncer's twin of the virtual object kind
// namespace/name. The UID is not compared: a virtual object recreated under
// the same name takes over its twin.
func (t Translator) Owns(host metav1.Object, kind, namespace, name string) bool {
	o, ok := t.OriginOf(host)
	return ok && o.Kind == kind && o.Namespace == namespace && o.Name == name
}

// HostLabels returns the labels of the host twin of an object with virtual
// labels: the tenant's labels (so translated selectors match) without any
// key in the reserved domain (see Reserved). Ownership labels are added by
// Mark. It suits annotations too, for callers that copy them all.
func HostLabels(virtual map[string]string) map[string]string {
	out := make(map[string]string, len(virtual)+3)
	for k, v := range virtual {
		if !Reserved(k) {
			out[k] = v
		}
	}
	return out
}

// HostSelector translates a virtual label selector (a Service's or a pod
// affinity term's) so that on the host it matches only pods of this cluster
// and virtual namespace. A nil or empty selector stays empty: it selects
// nothing in a Service, and callers decide what it means elsewhere.
func (t Translator) HostSelector(namespace string, virtual map[string]string) map[string]string {
	if len(virtual) == 0 {
		return nil
	}
	out := HostLabels(virtual)
	out[v1alpha1.ClusterLabel] = t.Cluster
	out[v1alpha1.SyncerManagedByLabel] = v1alpha1.SyncerManagedByValue
	out[v1alpha1.SyncerNamespaceLabel] = namespace
	return out
}

// HostLabelSelector is HostSelector for a metav1.LabelSelector: match labels
// are translated and the namespaces given are required with an In expression.
// Expressions on reserved keys are dropped.
func (t Translator) HostLabelSelector(namespaces []string, virtual *metav1.LabelSelector) *metav1.LabelSelector {
	out := &metav1.LabelSelector{MatchLabels: map[string]string{
		v1alpha1.ClusterLabel:         t.Cluster,
		v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue,
	}}
	if virtual != nil {
		for k, v := range HostLabels(virtual.MatchLabels) {
			out.MatchLabels[k] = v
		}
		for _, e := range virtual.MatchExpressions {
			if !Reserved(e.Key) {
				out.MatchExpressions = append(out.MatchExpressions, *e.DeepCopy())
			}
		}
	}
	out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{
		Key: v1alpha1.SyncerNamespaceLabel, Operator: metav1.LabelSelectorOpIn, Values: namespaces,
	})
	return out
}

// ManagedSelector selects every host object of this cluster that the syncer
// created; the host cache is limited to it.
func (t Translator) ManagedSelector() map[string]string {
	return map[string]string{v1alpha1.ClusterLabel: t.Cluster, v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}
}
