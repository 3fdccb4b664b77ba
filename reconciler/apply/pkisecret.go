package apply

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
)

// PKISecret returns a cluster's PKI Secret, as an object to add to the
// cluster's rendered objects (so Apply creates it after the namespace, keeps
// it in the inventory and prunes it with the cluster), and the bundle in it.
//
// The bundle is generated only for a cluster that has none: a live Secret
// of this Fleet is read and returned as it is; one that is missing although
// previous says warren made it, while the cluster's control plane
// StatefulSet is still on the host, is an error (its CAs are lost, and a
// new bundle would silently break the running cluster); one that exists and
// is not this Fleet's is a conflict error. A Secret missing with no control
// plane left is a cluster that was removed with all it held (pruned, maybe
// by a reconcile that stopped before it recorded so, or deleted by hand):
// the host, not a stale inventory, says so, and the cluster made again gets
// new CAs. Nothing is written here. The Secret is immutable: once written,
// a write with other CAs is refused by the API server.
func (a *Applier) PKISecret(ctx context.Context, namespace, cluster string, previous *Inventory) (*unstructured.Unstructured, *pki.Bundle, error) {
	name := pki.SecretName(cluster)
	ref := ObjectRef{Version: "v1", Kind: "Secret", Namespace: namespace, Name: name}
	live := &corev1.Secret{}
	err := a.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, live)
	var bundle *pki.Bundle
	switch {
	case err == nil:
		if reason := a.ownershipProblem(live); reason != "" {
			return nil, nil, &ConflictError{Conflict: Conflict{Object: ref, Reason: reason}}
		}
		if bundle, err = pki.FromSecretData(live.Data); err != nil {
			return nil, nil, fmt.Errorf("apply: %s: %w", ref, err)
		}
	case apierrors.IsNotFound(err):
		lost, err := a.casLost(ctx, ref, cluster, previous)
		if err != nil {
			return nil, nil, err
		}
		if lost {
			return nil, nil, fmt.Errorf("apply: %s was deleted; warren will not make new CAs for a cluster that had some: restore the Secret, or remove the cluster and add it again", ref)
		}
		if bundle, err = pki.Generate(cluster); err != nil {
			return nil, nil, fmt.Errorf("apply: generate the CAs of cluster %s: %w", cluster, err)
		}
	default:
		return nil, nil, fmt.Errorf("apply: read %s: %w", ref, err)
	}

	data := map[string]any{}
	for k, v := range bundle.SecretData() {
		data[k] = base64.StdEncoding.EncodeToString(v)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":      name,
			"namespace": namespace,
			"labels": map[string]any{
				v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue,
				v1alpha1.ClusterLabel:   cluster,
			},
		},
		"type": string(corev1.SecretTypeOpaque),
		// The API server refuses any change of its data: should two
		// writers each make CAs for a new cluster (a former leader that
		// resumes after its lease was taken over, or a stale render),
		// the first Secret written stands and the other write fails.
		"immutable": true,
		"data":      data,
	}}
	return obj, bundle, nil
}

// casLost reports whether a missing PKI Secret (ref) held CAs a running
// cluster still needs: previous records warren made it, and a StatefulSet of
// the cluster, not being deleted, is still in its namespace.
func (a *Applier) casLost(ctx context.Context, ref ObjectRef, cluster string, previous *Inventory) (bool, error) {
	if previous == nil || !slices.ContainsFunc(previous.Entries, func(e Entry) bool { return e.ID == ref.id() }) {
		return false, nil
	}
	selector := a.owner.Labels()
	selector[v1alpha1.ClusterLabel] = cluster
	var sets metav1.PartialObjectMetadataList
	sets.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("StatefulSetList"))
	if err := a.client.List(ctx, &sets, client.InNamespace(ref.Namespace), client.MatchingLabels(selector)); err != nil {
		return false, fmt.Errorf("apply: %s is missing; looking for cluster %s's control plane: %w", ref, cluster, err)
	}
	return slices.ContainsFunc(sets.Items, func(s metav1.PartialObjectMetadata) bool { return s.DeletionTimestamp.IsZero() }), nil
}

// ConflictError is a Conflict met outside Apply.
type ConflictError struct {
	Conflict Conflict
}

func (e *ConflictError) Error() string { return "apply: conflict: " + e.Conflict.String() }
