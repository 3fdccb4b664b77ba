package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

var testNames = translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}

func markedTwin(v client.Object, h client.Object) client.Object {
	h.SetName(testNames.HostName(v.GetNamespace(), v.GetName()))
	h.SetNamespace("vc-demo")
	testNames.Mark(h, translate.Origin{Kind: "ConfigMap", Namespace: v.GetNamespace(), Name: v.GetName()})
	return h
}

// The only host writes: a create never takes over a foreign name, a
// refusal is told to the tenant, a delete never touches a foreign object.
func TestThePairsWritesKeepToItsOwnObjects(t *testing.T) {
	v := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop"}}
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: testNames.HostName("shop", "settings"), Namespace: "vc-demo"}, Data: map[string]string{"theirs": "x"}}
	refuse := interceptor.Funcs{Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "x", fmt.Errorf("exceeded quota: compute"))
	}}
	for _, tc := range []struct {
		name    string
		host    []client.Object
		funcs   interceptor.Funcs
		wantErr error
		event   string
		data    map[string]string // of the host object afterwards
	}{
		{name: "a free name is taken", data: map[string]string{"mine": "y"}},
		{name: "the syncer's own twin (a lagging cache) is no conflict", host: []client.Object{markedTwin(v, &corev1.ConfigMap{Data: map[string]string{"old": "z"}})}, data: map[string]string{"old": "z"}},
		{name: "a foreign object is left and the tenant told", host: []client.Object{foreign}, wantErr: ErrConflict, event: "HostNameConflict", data: map[string]string{"theirs": "x"}},
		{name: "a refusal is told with the host's reason", funcs: refuse, event: "exceeded quota: compute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := fake.NewClientBuilder().WithObjects(tc.host...).WithInterceptorFuncs(tc.funcs).Build()
			recorder := events.NewFakeRecorder(10)
			p := &Pair{Config: &config.Config{}, Names: testNames, Host: host, HostReader: host, Events: recorder}
			h := &corev1.ConfigMap{Data: map[string]string{"mine": "y"}}
			markedTwin(v, h)
			err := p.CreateHost(context.Background(), "ConfigMap", v, h)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && tc.event == "" && err != nil {
				t.Fatalf("CreateHost: %v, want %v", err, tc.wantErr)
			}
			if tc.event != "" && (len(recorder.Events) == 0 || !strings.Contains(<-recorder.Events, tc.event)) {
				t.Errorf("no event saying %q", tc.event)
			}
			got := &corev1.ConfigMap{}
			if err := host.Get(context.Background(), client.ObjectKeyFromObject(h), got); client.IgnoreNotFound(err) != nil || fmt.Sprint(got.Data) != fmt.Sprint(tc.data) {
				t.Errorf("host object data %v (%v), want %v", got.Data, err, tc.data)
			}
			if got.Name == "" {
				return // nothing was made
			}
			if err := p.DeleteHost(context.Background(), "ConfigMap", got); err != nil {
				t.Fatal(err)
			}
			owned := testNames.Owns(got, "ConfigMap", "shop", "settings")
			if err := host.Get(context.Background(), client.ObjectKeyFromObject(h), got); apierrors.IsNotFound(err) != owned {
				t.Errorf("after DeleteHost: %v (the syncer's own: %v)", err, owned)
			}
		})
	}
}

// kindLog is a kind that records which call the Reconciler made.
type kindLog struct {
	Twin[*corev1.ConfigMap]
	calls []string
}

func (k *kindLog) SyncToHost(context.Context, *corev1.ConfigMap) (reconcile.Result, error) {
	k.calls = append(k.calls, "SyncToHost")
	return reconcile.Result{}, nil
}

func (k *kindLog) Sync(context.Context, *corev1.ConfigMap, *corev1.ConfigMap) (reconcile.Result, error) {
	k.calls = append(k.calls, "Sync")
	return reconcile.Result{}, nil
}

func (k *kindLog) SyncToVirtual(ctx context.Context, key types.NamespacedName, h *corev1.ConfigMap) (reconcile.Result, error) {
	k.calls = append(k.calls, "SyncToVirtual")
	return k.Twin.SyncToVirtual(ctx, key, h)
}

// The Reconciler calls the kind only with its own twins, and lets a twin go
// only when a live read says the virtual object is gone.
func TestTheReconcilerDispatchesOnBothTwins(t *testing.T) {
	v := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "shop"}}
	deleting := v.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp, deleting.Finalizers = &now, []string{"tenant.example.com/keep"}
	twin := markedTwin(v, &corev1.ConfigMap{})
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: twin.GetName(), Namespace: "vc-demo"}}
	for _, tc := range []struct {
		name          string
		cached, live  []client.Object
		host          []client.Object
		want          string
		hostRemaining bool
	}{
		{name: "virtual only", cached: []client.Object{v}, live: []client.Object{v}, want: "SyncToHost"},
		{name: "both", cached: []client.Object{v}, live: []client.Object{v}, host: []client.Object{twin}, want: "Sync", hostRemaining: true},
		{name: "twin only, virtual gone", host: []client.Object{twin}, want: "SyncToVirtual"},
		{name: "twin only in a lagging cache", live: []client.Object{v}, host: []client.Object{twin}, want: "", hostRemaining: true},
		{name: "being deleted", cached: []client.Object{deleting}, live: []client.Object{deleting}, host: []client.Object{twin}, want: ""},
		{name: "foreign", cached: []client.Object{v}, live: []client.Object{v}, host: []client.Object{foreign}, want: "", hostRemaining: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := fake.NewClientBuilder().WithObjects(tc.host...).Build()
			p := &Pair{Config: &config.Config{}, Names: testNames, Events: events.NewFakeRecorder(10), Host: host, HostReader: host,
				Virtual: fake.NewClientBuilder().WithObjects(tc.cached...).Build(), VirtualReader: fake.NewClientBuilder().WithObjects(tc.live...).Build()}
			k := &kindLog{Twin: Twin[*corev1.ConfigMap]{Pair: p, Kind: "ConfigMap"}}
			if _, err := For(p, "configmap", "ConfigMap", Syncer[*corev1.ConfigMap](k)).Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(v)}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(k.calls, ","); got != tc.want {
				t.Errorf("calls %q, want %q", got, tc.want)
			}
			err := host.Get(context.Background(), client.ObjectKeyFromObject(twin), &corev1.ConfigMap{})
			if remaining := err == nil; remaining != tc.hostRemaining {
				t.Errorf("host object remaining: %v, want %v", remaining, tc.hostRemaining)
			}
		})
	}
}
