package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"

	ssautils "github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// Object is one rendered object as Apply takes it: labelled as its Fleet's,
// encoded and digested by Prepare. Its encoding is a small fraction of the
// object's size in memory, so a whole fleet's objects can wait to be
// applied without holding every one of them decoded.
//
// Known drops the encoding and keeps what names the object and its digest:
// enough for Apply to keep an object the host holds as warren last applied
// it, which is what a cluster whose render has not changed needs.
type Object struct {
	ref     ObjectRef
	id      string
	digest  string
	cluster string // its warren.dev/cluster label
	// definition: a namespace, CRD, cluster role or class, applied (and
	// waited for) before the objects that may need it.
	definition bool
	// defines is the kind a CRD defines.
	defines schema.GroupKind
	// body is the object's JSON; nil once Known.
	body []byte
}

// Ref names the object.
func (o Object) Ref() ObjectRef { return o.ref }

// Cluster is the virtual cluster the object belongs to (its
// warren.dev/cluster label), empty for none.
func (o Object) Cluster() string { return o.cluster }

// Known is the object without its encoding: its name and digest alone.
func (o Object) Known() Object {
	o.body = nil
	return o
}

// decode returns a new copy of the object, to be written (a write replaces
// the copy's content with the API server's answer).
func (o Object) decode() (*unstructured.Unstructured, error) {
	if o.body == nil {
		return nil, fmt.Errorf("apply: %s was given by its digest alone and cannot be written", o.ref)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(o.body); err != nil {
		return nil, fmt.Errorf("apply: decode %s: %w", o.ref, err)
	}
	return u, nil
}

// Prepare labels objects as owner's, encodes and digests them, as
// ApplyObjects takes them. The objects given are not changed.
func Prepare(owner Owner, objects []*unstructured.Unstructured) ([]Object, error) {
	out := make([]Object, 0, len(objects))
	for _, o := range objects {
		if o.GetName() == "" || o.GetKind() == "" || o.GetAPIVersion() == "" {
			return nil, fmt.Errorf("apply: an object lacks apiVersion, kind or metadata.name: %s", ssautils.FmtUnstructured(o))
		}
		obj := labelled(o, owner)
		body, err := json.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("apply: %s: encode: %w", refOf(obj), err)
		}
		ref := refOf(obj)
		p := Object{
			ref:        ref,
			id:         ref.id(),
			digest:     digest(body),
			cluster:    obj.GetLabels()[v1alpha1.ClusterLabel],
			definition: ssautils.IsClusterDefinition(obj) || ssautils.IsClassDefinition(obj),
			body:       body,
		}
		if ssautils.IsCRD(obj) {
			group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
			p.defines = schema.GroupKind{Group: group, Kind: kind}
		}
		out = append(out, p)
	}
	return out, nil
}

// labelled is o with owner's labels, sharing all but its top level and
// metadata maps with o.
func labelled(o *unstructured.Unstructured, owner Owner) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: maps.Clone(o.Object)}
	if md, ok := o.Object["metadata"].(map[string]any); ok {
		obj.Object["metadata"] = maps.Clone(md)
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range owner.Labels() {
		labels[k] = v
	}
	labels[v1alpha1.ManagedByLabel] = v1alpha1.ManagedByValue
	obj.SetLabels(labels)
	return obj
}

// digest hashes an object's encoding as it is about to be applied.
// encoding/json writes map keys sorted, so equal objects hash equal.
func digest(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:12])
}
