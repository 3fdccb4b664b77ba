package apply

import (
	"context"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
)

// PKISecret returns a cluster's PKI Secret, as an object to add to the
// cluster's rendered objects (so Apply creates it after the namespace, keeps
// it in the inventory and prunes it with the cluster), and the bundle in it.
//
// The bundle is generated only when the Secret has never existed: a live
// Secret of this Fleet is read and returned as it is; one that is missing
// although previous says warren made it is an error (its CAs are lost, and
// a new bundle would silently break the running cluster); one that exists
// and is not this Fleet's is a conflict error. Nothing is written here.
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
		if previous != nil {
			for _, e := range previous.Entries {
				if e.ID == ref.id() {
					return nil, nil, fmt.Errorf("apply: %s was deleted; warren will not make new CAs for a cluster that had some: restore the Secret, or remove the cluster and add it again", ref)
				}
			}
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
		"data": data,
	}}
	return obj, bundle, nil
}

// ConflictError is a Conflict met outside Apply.
type ConflictError struct {
	Conflict Conflict
}

func (e *ConflictError) Error() string { return "apply: conflict: " + e.Conflict.String() }
