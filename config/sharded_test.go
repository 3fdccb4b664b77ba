package config_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
)

// `kubectl apply --server-side -k config/sharded` installs one reconciler
// per shard: Deployments of their own (names, pod selectors), each with a
// --watch-label-selector, and every Fleet, labelled with a shard or not,
// matched by exactly one of them.
func TestShardedInstallHasOneReconcilerPerShard(t *testing.T) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "sharded")
	if err != nil {
		t.Fatalf("kustomize build config/sharded: %v", err)
	}
	selectors := map[string]labels.Selector{}
	podSelectors := map[string]string{}
	for _, res := range resources.Resources() {
		if res.GetKind() != "Deployment" {
			continue
		}
		data, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		if err := yaml.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		if d.Namespace != "warren-system" || d.Spec.Template.Spec.ServiceAccountName != "warren-reconciler" {
			t.Errorf("Deployment %s/%s runs as %q; want warren-system and the warren-reconciler ServiceAccount", d.Namespace, d.Name, d.Spec.Template.Spec.ServiceAccountName)
		}
		pods := labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String()
		if other, ok := podSelectors[pods]; ok {
			t.Errorf("Deployments %s and %s select the same pods (%s)", other, d.Name, pods)
		}
		podSelectors[pods] = d.Name
		selectors[d.Name] = watchSelector(t, d)
	}
	if len(selectors) != 3 {
		t.Fatalf("want 3 reconciler Deployments (main, shard1, shard2), got %d: %v", len(selectors), selectors)
	}
	for _, fleet := range []labels.Set{{}, {v1alpha1.ShardingKeyLabel: "shard1"}, {v1alpha1.ShardingKeyLabel: "shard2"}} {
		var by []string
		for name, sel := range selectors {
			if sel.Matches(fleet) {
				by = append(by, name)
			}
		}
		if len(by) != 1 {
			t.Errorf("a Fleet labelled %v is reconciled by %v; want exactly one reconciler", fleet, by)
		}
	}
}

// watchSelector is the Deployment's one --watch-label-selector.
func watchSelector(t *testing.T, d appsv1.Deployment) labels.Selector {
	t.Helper()
	var found []string
	for _, arg := range d.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(arg, "--watch-label-selector="); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Deployment %s has %d --watch-label-selector flags, want 1: %v", d.Name, len(found), d.Spec.Template.Spec.Containers[0].Args)
	}
	sel, err := labels.Parse(found[0])
	if err != nil {
		t.Fatalf("Deployment %s: --watch-label-selector=%s: %v", d.Name, found[0], err)
	}
	return sel
}
