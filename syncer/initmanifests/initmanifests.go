// Package initmanifests applies the manifests the reconciler renders into the
// host ConfigMap <cluster>-init-manifests (RBAC bindings from the cluster's
// access list, CoreDNS for the k8s distro…) inside the virtual cluster with
// server-side apply, and applies them again whenever they change.
//
// It only reads that one ConfigMap on the host and only writes to the
// virtual cluster; it never deletes anything.
package initmanifests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// FieldManager is the one server-side apply field manager, never changed.
const FieldManager = "warren-syncer"

// maxManifestBytes bounds what is read from one ConfigMap key.
const maxManifestBytes = 4 << 20

// Applier polls the ConfigMap and applies it when its content changes.
type Applier struct {
	HostReader client.Reader
	Virtual    client.Client
	ConfigMap  types.NamespacedName
	Interval   time.Duration
	Log        logr.Logger

	applied [sha256.Size]byte
	// roles are the ClusterRoles the applied bindings grant.
	roles []string
	// once is set after the first successful apply, once every role the
	// bindings grant is filled: until then the tenant's access may not
	// work yet, so the syncer is not ready.
	once atomic.Bool
}

// Applied tells whether the manifests were applied at least once and the
// ClusterRoles they grant are filled (view, edit and admin are aggregated by
// the controller-manager some time after the API server starts, and are
// empty until then). The syncer's readiness waits for it, so a Ready cluster
// already lets its tenants in.
func (a *Applier) Applied() bool { return a.once.Load() }

// NeedLeaderElection: only the leader writes.
func (a *Applier) NeedLeaderElection() bool { return true }

// Start runs until ctx ends.
func (a *Applier) Start(ctx context.Context) error {
	interval := a.Interval
	if interval == 0 {
		interval = 5 * time.Second
	}
	for {
		if err := a.Sync(ctx); err != nil {
			a.Log.Error(err, "applying init manifests", "configMap", a.ConfigMap.String())
		}
		wait := interval
		if !a.once.Load() {
			wait = min(interval, time.Second) // readiness waits on this
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Sync applies the manifests once if they changed since the last success.
func (a *Applier) Sync(ctx context.Context) error {
	cm := &corev1.ConfigMap{}
	if err := a.HostReader.Get(ctx, a.ConfigMap, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading ConfigMap %s: %w", a.ConfigMap, err)
	}
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", k, cm.Data[k])
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if sum != a.applied {
		if err := a.apply(ctx, cm, keys); err != nil {
			return err
		}
		a.applied = sum
	}
	if a.once.Load() {
		return nil
	}
	unfilled, err := unfilledRoles(ctx, a.Virtual, a.roles)
	if err != nil {
		return err
	}
	if len(unfilled) > 0 {
		a.Log.Info("waiting for the granted cluster roles to be filled", "roles", unfilled)
		return nil
	}
	a.once.Store(true)
	return nil
}

// apply applies every object of the ConfigMap's keys, in order.
func (a *Applier) apply(ctx context.Context, cm *corev1.ConfigMap, keys []string) error {
	var objs []*unstructured.Unstructured
	for _, k := range keys {
		parsed, err := Parse(cm.Data[k])
		if err != nil {
			return fmt.Errorf("ConfigMap %s, key %s: %w", a.ConfigMap, k, err)
		}
		objs = append(objs, parsed...)
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
	var errs []error
	for _, o := range objs {
		err := a.Virtual.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner(FieldManager), client.ForceOwnership)
		if err != nil {
			errs = append(errs, fmt.Errorf("applying %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.roles = grantedRoles(objs)
	a.Log.Info("applied init manifests", "objects", len(objs))
	return nil
}

// grantedRoles are the ClusterRoles the objects' bindings refer to.
func grantedRoles(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if o.GroupVersionKind().Group != rbacv1.GroupName || (o.GetKind() != "ClusterRoleBinding" && o.GetKind() != "RoleBinding") {
			continue
		}
		kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		if kind == "ClusterRole" && name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// unfilledRoles are the roles that do not exist yet, or are aggregated and
// still hold no rule: a binding to them grants nothing yet.
func unfilledRoles(ctx context.Context, r client.Reader, roles []string) ([]string, error) {
	var out []string
	for _, name := range roles {
		var role rbacv1.ClusterRole
		err := r.Get(ctx, client.ObjectKey{Name: name}, &role)
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, name)
		case err != nil:
			return nil, fmt.Errorf("reading ClusterRole %s: %w", name, err)
		case role.AggregationRule != nil && len(role.Rules) == 0:
			out = append(out, name)
		}
	}
	return out, nil
}

// Parse reads a multi-document YAML stream into objects, naming the
// document and field at fault.
func Parse(data string) ([]*unstructured.Unstructured, error) {
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("manifest is %d bytes, over the %d byte limit", len(data), maxManifestBytes)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewBufferString(data)))
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		switch {
		case u.GetAPIVersion() == "":
			return nil, fmt.Errorf("document %d: field apiVersion: required", doc)
		case u.GetKind() == "":
			return nil, fmt.Errorf("document %d: field kind: required", doc)
		case u.GetName() == "":
			return nil, fmt.Errorf("document %d (%s): field metadata.name: required", doc, u.GetKind())
		}
		out = append(out, u)
	}
}

// rank orders objects so that what others depend on comes first.
func rank(o *unstructured.Unstructured) int {
	switch o.GetKind() {
	case "Namespace":
		return 0
	case "CustomResourceDefinition":
		return 1
	case "ServiceAccount", "ClusterRole", "Role", "ConfigMap", "Secret":
		return 2
	case "ClusterRoleBinding", "RoleBinding":
		return 3
	default:
		return 4
	}
}
