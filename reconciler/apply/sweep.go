package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

// Sweep lists every kind the API server serves, namespaced and
// cluster-scoped, and returns each object whose labels match. It is how
// warren proves a removed cluster left nothing behind. Kinds that cannot be
// listed are skipped; a discovery failure is an error.
func Sweep(ctx context.Context, cfg *rest.Config, match map[string]string) ([]ObjectRef, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: sweep: %w", err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: sweep: %w", err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		return nil, fmt.Errorf("apply: sweep: discovery: %w", err)
	}
	selector := labels.SelectorFromSet(match).String()
	var found []ObjectRef
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			items, err := mc.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				continue
			}
			for _, item := range items.Items {
				found = append(found, ObjectRef{Group: gv.Group, Version: gv.Version, Kind: r.Kind, Namespace: item.Namespace, Name: item.Name})
			}
		}
	}
	return found, nil
}
