package translate

import (
	"regexp"
	"strings"
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

var hashed = regexp.MustCompile(`-[a-z2-7]{26}$`)

func TestHostNameIsReadableWhenItFitsAndHashedWhenNot(t *testing.T) {
	tr := Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	const suffix = "-x-default-x-demo" // 17 characters
	cases := []struct {
		name, namespace, cluster string
		want                     string // "" means: shortened form
	}{
		{name: "web", namespace: "default", want: "web-x-default-x-demo"},
		// 46 + 17 = 63: exactly at the limit stays readable.
		{name: strings.Repeat("a", 46), namespace: "default", want: strings.Repeat("a", 46) + suffix},
		// 47 + 17 = 64: one past the limit is shortened.
		{name: strings.Repeat("a", 47), namespace: "default"},
		{name: strings.Repeat("b", 63), namespace: strings.Repeat("n", 63)},
		{name: strings.Repeat("c", 253), namespace: "default"},
		// The separator inside a name would make the readable form ambiguous.
		{name: "a-x-b", namespace: "c"},
		{name: "a", namespace: "b-x-c"},
		// Dots are legal in pod names; the shortened form never ends in one.
		{name: strings.Repeat("d", 46) + "." + strings.Repeat("e", 20), namespace: "default"},
	}
	for _, c := range cases {
		got := tr.HostName(c.namespace, c.name)
		if c.want != "" && got != c.want {
			t.Errorf("HostName(%q, %q) = %q, want %q", c.namespace, c.name, got, c.want)
		}
		if c.want == "" && (!hashed.MatchString(got) || !strings.HasPrefix(got, c.name[:1])) {
			t.Errorf("HostName(%q, %q) = %q: expected a name prefix and a hash suffix", c.namespace, c.name, got)
		}
		if len(got) > MaxNameLength {
			t.Errorf("HostName(%q, %q) = %q is %d characters", c.namespace, c.name, got, len(got))
		}
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
			t.Errorf("HostName(%q, %q) = %q is not a valid name: %v", c.namespace, c.name, got, errs)
		}
	}
}

func TestServiceNamesStayDNSLabels(t *testing.T) {
	tr := Translator{Cluster: "demo"}
	for _, n := range []int{1, 46, 47, 62, 63} {
		name := "s" + strings.Repeat("v", n-1)
		got := tr.HostName(strings.Repeat("n", 63), name)
		if errs := validation.IsDNS1035Label(got); len(errs) > 0 {
			t.Errorf("service %d chars -> %q: %v", n, got, errs)
		}
	}
}

func TestHostNamesNeverCollide(t *testing.T) {
	tr := Translator{Cluster: "demo"}
	seen := map[string]string{}
	add := func(ns, name string) {
		got := tr.HostName(ns, name)
		id := ns + "/" + name
		if prev, dup := seen[got]; dup {
			t.Fatalf("%s and %s both translate to %q", prev, id, got)
		}
		seen[got] = id
	}
	long := strings.Repeat("a", 63)
	// Names sharing the first 60 characters, differing only at the end.
	for i := 0; i < 50; i++ {
		add("default", long[:60]+string(rune('a'+i%26))+strings.Repeat("z", i/26))
	}
	add("a-x-b", "c")
	add("a", "b-x-c")
	add("a-x-b-x-c", "d")
	add("b-x-c", "a")
	add("c", "a-x-b")
	add(long, long)
	add(long[:62], long)
	add(long, long[:62])
}

func TestDerivedNamesAreDistinctFromObjectNames(t *testing.T) {
	tr := Translator{Cluster: "demo"}
	a := tr.DerivedName("sa-token", "default", "web")
	b := tr.HostName("default", "sa-token-web")
	if a == b {
		t.Fatalf("derived name %q equals an object name", a)
	}
	if errs := validation.IsDNS1123Subdomain(tr.DerivedName("sa-token", "default", strings.Repeat("w", 253))); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func TestOwnershipMarksRoundTrip(t *testing.T) {
	tr := Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	long := strings.Repeat("l", 63)
	for _, o := range []Origin{
		{Kind: "Pod", Namespace: "default", Name: "web-0", UID: "1234"},
		{Kind: "ConfigMap", Namespace: long, Name: strings.Repeat("m", 253)},
	} {
		host := &metav1.ObjectMeta{Name: tr.HostName(o.Namespace, o.Name), Namespace: "vc-demo", Labels: map[string]string{"app": "web"}}
		tr.Mark(host, o)
		got, ok := tr.OriginOf(host)
		if !ok || got != o {
			t.Errorf("OriginOf(Mark(%+v)) = %+v, %v", o, got, ok)
		}
		if !tr.Owns(host, o.Kind, o.Namespace, o.Name) {
			t.Errorf("Owns is false for a marked %+v", o)
		}
		if errs := validation.IsValidLabelValue(host.Labels[v1alpha1.SyncerNamespaceLabel]); len(errs) > 0 {
			t.Errorf("namespace label %q invalid: %v", host.Labels[v1alpha1.SyncerNamespaceLabel], errs)
		}
		if host.Labels["app"] != "web" {
			t.Errorf("Mark dropped an existing label")
		}
	}
}

func TestForeignObjectsAreNotOwned(t *testing.T) {
	tr := Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	marked := func(mut func(*metav1.ObjectMeta)) *metav1.ObjectMeta {
		m := &metav1.ObjectMeta{Name: "web-x-default-x-demo", Namespace: "vc-demo"}
		tr.Mark(m, Origin{Kind: "Pod", Namespace: "default", Name: "web"})
		mut(m)
		return m
	}
	cases := map[string]*metav1.ObjectMeta{
		"no marks":             {Name: "web-x-default-x-demo", Namespace: "vc-demo"},
		"reconciler's object":  {Name: "demo", Namespace: "vc-demo", Labels: map[string]string{v1alpha1.ClusterLabel: "demo", "app.kubernetes.io/managed-by": "warren"}},
		"other cluster":        marked(func(m *metav1.ObjectMeta) { m.Labels[v1alpha1.ClusterLabel] = "other" }),
		"other namespace":      marked(func(m *metav1.ObjectMeta) { m.Namespace = "kube-system" }),
		"annotations stripped": marked(func(m *metav1.ObjectMeta) { m.Annotations = nil }),
		"label and annotation disagree": marked(func(m *metav1.ObjectMeta) {
			m.Labels[v1alpha1.SyncerNamespaceLabel] = "other"
		}),
	}
	for name, m := range cases {
		if _, ok := tr.OriginOf(m); ok {
			t.Errorf("%s: treated as ours", name)
		}
	}
	if tr.Owns(marked(func(*metav1.ObjectMeta) {}), "Pod", "default", "other") {
		t.Error("a twin of one pod is owned as the twin of another")
	}
}

func TestTenantsCannotForgeReservedLabels(t *testing.T) {
	tr := Translator{Cluster: "demo"}
	got := tr.HostSelector("team-a", map[string]string{"app": "web", v1alpha1.SyncerNamespaceLabel: "team-b", v1alpha1.ClusterLabel: "other"})
	want := map[string]string{"app": "web", v1alpha1.SyncerNamespaceLabel: "team-a", v1alpha1.ClusterLabel: "demo", v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}
	if len(got) != len(want) {
		t.Fatalf("HostSelector = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("HostSelector = %v, want %v", got, want)
		}
	}
	if tr.HostSelector("team-a", nil) != nil {
		t.Fatal("an empty selector must stay empty")
	}
	sel := tr.HostLabelSelector([]string{"team-a"}, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: v1alpha1.SyncerNamespaceLabel, Operator: metav1.LabelSelectorOpExists},
		{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"db"}},
	}})
	if len(sel.MatchExpressions) != 2 || sel.MatchExpressions[1].Key != v1alpha1.SyncerNamespaceLabel || sel.MatchExpressions[0].Key != "tier" {
		t.Fatalf("HostLabelSelector = %+v", sel)
	}
}

// The table the issue asked for: separators at both ends of name and
// namespace, the length threshold, and 253-character names. Each case
// names two identities that a naive join would give one host name.
func TestHostNameIsInjectiveAtTheEdges(t *testing.T) {
	long := strings.Repeat("a", 253)
	cases := []struct {
		what      string
		cluster   string
		ns1, n1   string
		ns2, n2   string
		readable1 bool // whether the first stays readable
	}{
		{what: "name ends in -x, namespace starts with x-", cluster: "demo", n1: "db-x", ns1: "n", n2: "db", ns2: "x-n"},
		{what: "separator at the end of the name", cluster: "demo", n1: "a-x-", ns1: "b", n2: "a", ns2: "-b"},
		{what: "separator at the start of the namespace", cluster: "demo", n1: "a", ns1: "-x-b", n2: "a-x-", ns2: "b"},
		{what: "separator inside the name", cluster: "demo", n1: "a-x-b", ns1: "c", n2: "a", ns2: "b-x-c"},
		{what: "name x against namespace x", cluster: "demo", n1: "x", ns1: "x-x", n2: "x-x", ns2: "x"},
		{what: "namespace ends in -x against the cluster", cluster: "x-demo", n1: "a", ns1: "b-x", n2: "a", ns2: "b"},
		{what: "a readable name against a hashed one", cluster: "demo", n1: "db", ns1: "n", n2: "db-x", ns2: "n", readable1: true},
		{what: "the threshold: 63 characters stay readable", cluster: "demo", n1: strings.Repeat("a", 46), ns1: "default", n2: strings.Repeat("a", 47), ns2: "default", readable1: true},
		{what: "253-character names differing in the last character", cluster: "demo", n1: long, ns1: "n", n2: long[:252] + "b", ns2: "n"},
		{what: "253-character names, one namespace longer", cluster: "demo", n1: long, ns1: "n", n2: long[:252], ns2: "n"},
		{what: "long namespace against long name", cluster: "demo", n1: "a", ns1: strings.Repeat("n", 63), n2: strings.Repeat("n", 63), ns2: "a"},
	}
	for _, c := range cases {
		tr := Translator{Cluster: c.cluster, HostNamespace: "vc-" + c.cluster}
		a, b := tr.HostName(c.ns1, c.n1), tr.HostName(c.ns2, c.n2)
		if a == b {
			t.Errorf("%s: %s/%s and %s/%s both translate to %q", c.what, c.ns1, c.n1, c.ns2, c.n2, a)
		}
		if got := !hashed.MatchString(a); got != c.readable1 {
			t.Errorf("%s: %q readable=%v, want %v", c.what, a, got, c.readable1)
		}
		for _, n := range []string{a, b} {
			if len(n) > MaxNameLength || len(validation.IsDNS1123Subdomain(n)) > 0 {
				t.Errorf("%s: %q is not a valid host name", c.what, n)
			}
		}
	}
}

// Every name, namespace and cluster over the alphabet {a, x, -} up to five
// characters (the separator's own letters, so every overlap occurs): no two
// identities share a host name, and each readable name reads back to its
// own identity.
func TestHostNameIsInjectiveExhaustively(t *testing.T) {
	var words []string
	var grow func(string)
	grow = func(w string) {
		if w != "" && w[0] != '-' && w[len(w)-1] != '-' {
			words = append(words, w)
		}
		if len(w) < 5 {
			for _, c := range "ax-" {
				grow(w + string(c))
			}
		}
	}
	grow("")
	seen := map[string]string{}
	for _, cluster := range []string{"a", "x", "a-x", "x-a"} {
		tr := Translator{Cluster: cluster}
		for _, ns := range words {
			for _, name := range words {
				got := tr.HostName(ns, name)
				id := cluster + ":" + ns + "/" + name
				if prev, dup := seen[got]; dup {
					t.Fatalf("%s and %s both translate to %q", prev, id, got)
				}
				seen[got] = id
				if !hashed.MatchString(got) && got != name+"-x-"+ns+"-x-"+cluster {
					t.Fatalf("%s: readable %q does not read back", id, got)
				}
			}
		}
	}
	if len(seen) < 50000 {
		t.Fatalf("only %d identities tried", len(seen))
	}
}

func TestReservedKeys(t *testing.T) {
	for key, want := range map[string]bool{
		"warren.dev/cluster":       true,
		"warren.dev/anything":      true,
		"control.warren.dev/role":  true,
		"a.b.warren.dev/x":         true,
		"WARREN.DEV/cluster":       true,
		"notwarren.dev/x":          false,
		"warren.dev.example.com/x": false,
		"app.kubernetes.io/name":   false,
		"warren.dev":               false, // no prefix: a plain name
		"app":                      false,
		"syncer.warren.dev":        false,
	} {
		if got := Reserved(key); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", key, got, want)
		}
	}
	got := HostLabels(map[string]string{"app": "web", "warren.dev/cluster": "x", "ctl.warren.dev/component": "control-plane"})
	if len(got) != 1 || got["app"] != "web" {
		t.Errorf("HostLabels kept reserved keys: %v", got)
	}
}
