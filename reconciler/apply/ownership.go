package apply

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Marks other GitOps tools leave on the objects they manage.
const (
	fluxLabelPrefix     = "kustomize.toolkit.fluxcd.io/"
	argoTrackingID      = "argocd.argoproj.io/tracking-id"
	argoInstanceLabel   = "argocd.argoproj.io/instance"
	helmManagedByValue  = "Helm"
	helmReleaseNameAnno = "meta.helm.sh/release-name"
)

// foreign looks up an object warren is about to create that is not in the
// list of this Fleet's objects. It returns nil when the object does not
// exist (or carries this Fleet's labels after all), else the Conflict.
func (a *Applier) foreign(ctx context.Context, d desiredObject) (*Conflict, error) {
	conflict, _, err := a.lookUp(ctx, d)
	return conflict, err
}

// lookUp is foreign that also says whether the object does not exist.
func (a *Applier) lookUp(ctx context.Context, d desiredObject) (conflict *Conflict, absent bool, err error) {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(d.ref.GroupVersionKind())
	err = a.client.Get(ctx, client.ObjectKey{Namespace: d.ref.Namespace, Name: d.ref.Name}, live)
	switch {
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err):
		return nil, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("apply: look up %s: %w", d.ref, err)
	}
	if reason := a.ownershipProblem(live); reason != "" {
		return &Conflict{Object: d.ref, Reason: reason}, false, nil
	}
	return nil, false, nil
}

// ownershipProblem says why obj is not this Fleet's, or "" when it is.
func (a *Applier) ownershipProblem(obj metav1.Object) string {
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	if labels[v1alpha1.FleetNameLabel] == a.owner.Name && labels[v1alpha1.FleetNamespaceLabel] == a.owner.Namespace {
		return ""
	}
	if name, ok := labels[v1alpha1.FleetNameLabel]; ok {
		return fmt.Sprintf("owned by Fleet %s/%s", labels[v1alpha1.FleetNamespaceLabel], name)
	}
	var flux []string
	for k, v := range labels {
		if strings.HasPrefix(k, fluxLabelPrefix) {
			flux = append(flux, strings.TrimPrefix(k, fluxLabelPrefix)+"="+v)
		}
	}
	if len(flux) > 0 {
		sort.Strings(flux)
		return "managed by Flux (" + strings.Join(flux, ", ") + ")"
	}
	if id, ok := annotations[argoTrackingID]; ok {
		return "managed by Argo CD (tracking-id " + id + ")"
	}
	if app, ok := labels[argoInstanceLabel]; ok {
		return "managed by Argo CD (application " + app + ")"
	}
	if labels[v1alpha1.ManagedByLabel] == helmManagedByValue || annotations[helmReleaseNameAnno] != "" {
		return "managed by Helm (release " + annotations[helmReleaseNameAnno] + ")"
	}
	managers := fieldManagers(obj)
	if len(managers) > 0 {
		return "exists and was not created by warren for this Fleet (field managers: " + strings.Join(managers, ", ") + ")"
	}
	return "exists and was not created by warren for this Fleet"
}

func fieldManagers(obj metav1.Object) []string {
	var out []string
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != "" && !slices.Contains(out, mf.Manager) {
			out = append(out, mf.Manager)
		}
	}
	sort.Strings(out)
	return out
}
