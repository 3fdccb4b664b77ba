package fluxe2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/warren-dev/warren/internal/localplane"
	"github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/apply"
	"github.com/warren-dev/warren/test/flux"
)

// The Flux objects of the story: its sources and Kustomizations.
var (
	fluxSources        = []string{"clusters", "platform", "warren"}
	fluxKustomizations = []string{"warren-kubeconfigs", "platform", "warren"}
)

// object names an object as audit events do: group/resource namespace/name.
type object struct {
	group, resource, namespace, name string
}

func (o object) String() string {
	return fmt.Sprintf("%s/%s %s/%s", o.group, o.resource, o.namespace, o.name)
}

func written(w localplane.AuditWrite) object {
	return object{w.Group, w.Resource, w.Namespace, w.Name}
}

// fluxObjects are the objects Flux applied, from its Kustomizations'
// inventories, each with its resourceVersion and field managers now.
func (s *story) fluxObjects(t *testing.T) map[object]*unstructured.Unstructured {
	t.Helper()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(s.host.Config)))
	dyn := dynamic.NewForConfigOrDie(s.host.Config)
	out := map[object]*unstructured.Unstructured{}
	for _, name := range fluxKustomizations {
		ks, err := flux.Dynamic(s.host.Config, flux.Kustomizations).Get(s.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range flux.Inventory(ks) {
			// namespace_name_group_kind; names and namespaces hold no "_".
			parts := strings.SplitN(id, "_", 4)
			m, err := mapper.RESTMapping(schema.GroupKind{Group: parts[2], Kind: parts[3]})
			if err != nil {
				t.Fatalf("inventory entry %s: %v", id, err)
			}
			o := object{parts[2], m.Resource.Resource, parts[0], parts[1]}
			ri := dyn.Resource(m.Resource)
			var got *unstructured.Unstructured
			if o.namespace != "" {
				got, err = ri.Namespace(o.namespace).Get(s.ctx, o.name, metav1.GetOptions{})
			} else {
				got, err = ri.Get(s.ctx, o.name, metav1.GetOptions{})
			}
			if err != nil {
				t.Fatalf("Flux's %s: %v", o, err)
			}
			out[o] = got
		}
	}
	return out
}

// isFlux says whether an object is Flux's: applied by it, or one of its own.
func isFlux(o object, applied map[object]*unstructured.Unstructured) bool {
	_, ok := applied[o]
	return ok || o.namespace == flux.Namespace || strings.HasSuffix(o.group, ".toolkit.fluxcd.io")
}

// warrenObjects are the objects warren's reconciler wrote in the audit log
// (events aside: each is a new record, nobody's object).
func warrenObjects(writes []localplane.AuditWrite) map[object]bool {
	out := map[object]bool{}
	for _, w := range writes {
		if w.User == warrenUser && w.Resource != "events" && w.Code < 300 {
			out[written(w)] = true
		}
	}
	return out
}

// quietReconciles runs ten reconciles of both tools with nothing changed in
// Git, then reads the API server's audit log of that window: every write
// (dry runs included) by warren's ServiceAccount and by Flux's two, with
// its field manager. Neither may write to the other's objects; Flux's
// objects keep their resourceVersions and field managers; no condition of
// either tool speaks of a conflict.
func (s *story) quietReconciles(t *testing.T) {
	applied := s.fluxObjects(t)
	before, err := s.host.AuditWrites()
	if err != nil {
		t.Fatal(err)
	}
	warrens := warrenObjects(before)
	if len(warrens) < 10 || len(applied) < 10 {
		t.Fatalf("only %d objects of warren's and %d of Flux's seen: the checks below would prove little", len(warrens), len(applied))
	}
	head := s.fleet.Head(t, "main")
	for i := range 10 {
		s.requestReconcile(t, fmt.Sprintf("quiet-%d", i))
		for _, name := range fluxSources {
			flux.Reconcile(t, s.host.Config, flux.GitRepositories, name, time.Minute)
		}
		for _, name := range fluxKustomizations {
			flux.Reconcile(t, s.host.Config, flux.Kustomizations, name, time.Minute)
		}
	}
	if got := s.fleet.Head(t, "main"); got != head {
		t.Errorf("ten quiet reconciles moved main from %s to %s", head, got)
	}
	after, err := s.host.AuditWrites()
	if err != nil {
		t.Fatal(err)
	}
	window := after[len(before):]
	t.Logf("writes in the window by warren and Flux, by user, field manager, verb and resource:\n%s", tally(window))
	s.checkWindow(t, window, applied, warrens)
	// Nothing changed, so nothing is written but each tool's own status
	// and events: dry runs aside, any other write would be a fight.
	for _, w := range window {
		if isTool(w.User) && !w.DryRun && w.Subresource != "status" && w.Resource != "events" {
			t.Errorf("%s wrote %s (%s, field manager %q) with nothing changed", w.User, w.Object(), w.Verb, w.FieldManager)
		}
	}
	s.checkUntouched(t, applied)
	s.checkNoConflicts(t)
}

// checkWindow fails on any write by one tool to the other's objects.
func (s *story) checkWindow(t *testing.T, window []localplane.AuditWrite, applied map[object]*unstructured.Unstructured, warrens map[object]bool) {
	t.Helper()
	var fluxWrites, warrenWrites int
	for _, w := range window {
		o := written(w)
		switch {
		case w.User == warrenUser:
			warrenWrites++
			if isFlux(o, applied) {
				t.Errorf("warren wrote Flux's %s: %s (field manager %q, dry run %v)", o, w.Verb, w.FieldManager, w.DryRun)
			}
		case isTool(w.User):
			fluxWrites++
			if warrens[o] || o.group == v1alpha1.GroupVersion.Group {
				t.Errorf("%s wrote warren's %s: %s (field manager %q, dry run %v)", w.User, o, w.Verb, w.FieldManager, w.DryRun)
			}
		}
	}
	// Each reconcile writes its status: no writes at all would mean the
	// audit log did not see the tools.
	if fluxWrites == 0 || warrenWrites == 0 {
		t.Fatalf("the audit log holds %d write(s) by Flux and %d by warren in the window: it did not see both tools reconcile", fluxWrites, warrenWrites)
	}
}

// checkUntouched compares Flux's objects with what they were before the
// window: same resourceVersion, and no field manager nor label of warren's.
func (s *story) checkUntouched(t *testing.T, before map[object]*unstructured.Unstructured) {
	t.Helper()
	now := s.fluxObjects(t)
	for o, was := range before {
		got, ok := now[o]
		if !ok {
			t.Errorf("Flux's %s left its inventory", o)
			continue
		}
		if got.GetResourceVersion() != was.GetResourceVersion() && o.resource != "sealedsecrets" {
			t.Errorf("Flux's %s changed in the window (resourceVersion %s → %s)", o, was.GetResourceVersion(), got.GetResourceVersion())
		}
		for _, m := range got.GetManagedFields() {
			if m.Manager == apply.FieldManager || m.Manager == v1alpha1.ManagedByValue {
				t.Errorf("Flux's %s has warren's field manager %q", o, m.Manager)
			}
		}
		if _, ok := got.GetLabels()[v1alpha1.FleetNameLabel]; ok {
			t.Errorf("Flux's %s carries warren's label %s", o, v1alpha1.FleetNameLabel)
		}
	}
}

// checkNoConflicts reads both tools' conditions: all Ready, none naming a
// conflict.
func (s *story) checkNoConflicts(t *testing.T) {
	t.Helper()
	for _, gvr := range []schema.GroupVersionResource{flux.GitRepositories, flux.Kustomizations} {
		list, err := flux.Dynamic(s.host.Config, gvr).List(s.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range list.Items {
			status, msg := flux.Condition(&obj, "Ready")
			if status != "True" || strings.Contains(strings.ToLower(msg), "conflict") {
				t.Errorf("%s %s: Ready %s: %s", gvr.Resource, obj.GetName(), status, msg)
			}
		}
	}
	f := s.getFleet(t)
	vc := s.cluster(t, "alpha")
	for what, obj := range map[string]conditions.Getter{"Fleet": f, "VirtualCluster alpha": vc} {
		if !conditions.IsReady(obj) {
			t.Errorf("%s is not Ready: %s", what, conditions.GetMessage(obj, "Ready"))
		}
		for _, c := range obj.GetConditions() {
			if c.Reason == v1alpha1.ConflictReason || strings.Contains(strings.ToLower(c.Message), "conflict") {
				t.Errorf("%s condition %s: %s: %s", what, c.Type, c.Reason, c.Message)
			}
		}
	}
}

// isTool says whether user is warren's reconciler or one of Flux's
// controllers.
func isTool(user string) bool {
	return user == warrenUser || user == flux.User(flux.SourceController) || user == flux.User(flux.KustomizeController)
}

// tally counts warren's and Flux's writes by user, field manager, verb and
// resource, one line each, sorted.
func tally(writes []localplane.AuditWrite) string {
	counts := map[string]int{}
	for _, w := range writes {
		if !isTool(w.User) {
			continue
		}
		res := w.Resource
		if w.Subresource != "" {
			res += "/" + w.Subresource
		}
		dry := ""
		if w.DryRun {
			dry = " (dry run)"
		}
		counts[fmt.Sprintf("%s | %s | %s %s%s", w.User, w.FieldManager, w.Verb, res, dry)]++
	}
	var lines []string
	for k, n := range counts {
		lines = append(lines, fmt.Sprintf("%4d  %s", n, k))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
