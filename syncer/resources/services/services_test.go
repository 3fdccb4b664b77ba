package services

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/warren-dev/warren/reconciler/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/warren-dev/warren/syncer"
	"github.com/warren-dev/warren/syncer/config"
	"github.com/warren-dev/warren/syncer/translate"
)

func TestAHostServiceIsConfinedToItsCluster(t *testing.T) {
	s := &Syncer{Twin: syncer.Twin[*corev1.Service]{Kind: Kind, Pair: &syncer.Pair{Config: &config.Config{}, Names: translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}}}}
	v := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Type:        corev1.ServiceTypeLoadBalancer,
			ClusterIP:   "10.96.4.4",
			Selector:    map[string]string{"app": "web"},
			ExternalIPs: []string{"203.0.113.9"},
			Ports:       []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
		},
	}
	h := s.hostService(v)
	if h.Name != "web-x-shop-x-demo" || h.Namespace != "vc-demo" {
		t.Fatalf("identity %s/%s", h.Namespace, h.Name)
	}
	if h.Spec.Type != corev1.ServiceTypeClusterIP || len(h.Spec.ExternalIPs) != 0 || h.Spec.Ports[0].NodePort != 0 {
		t.Errorf("host service exposes more than a ClusterIP: %+v", h.Spec)
	}
	if h.Spec.ClusterIP != "10.96.4.4" || h.Spec.ClusterIPs[0] != "10.96.4.4" {
		t.Errorf("the virtual address is not asked for: %v", h.Spec.ClusterIPs)
	}
	want := map[string]string{"app": "web", v1alpha1.ClusterLabel: "demo", v1alpha1.SyncerNamespaceLabel: "shop", v1alpha1.SyncerManagedByLabel: v1alpha1.SyncerManagedByValue}
	for k, val := range want {
		if h.Spec.Selector[k] != val {
			t.Errorf("selector %v lacks %s=%s", h.Spec.Selector, k, val)
		}
	}
	if o, ok := s.Names.OriginOf(h); !ok || o.Kind != Kind || o.Name != "web" {
		t.Errorf("origin %+v %v", o, ok)
	}
}

func TestWhichServicesHaveTwins(t *testing.T) {
	cases := map[string]struct {
		svc  corev1.Service
		want bool
	}{
		"ordinary":             {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}, true},
		"the API":              {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}, false},
		"external name":        {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "kubernetes.default.svc"}}, false},
		"kubernetes elsewhere": {corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "shop"}}, true},
	}
	for name, c := range cases {
		if got := syncer.ServiceHasTwin(&c.svc); got != c.want {
			t.Errorf("%s: ServiceHasTwin = %v", name, got)
		}
	}
}

// NodePort and LoadBalancer keep their type on the host only when the
// syncer is told so; external IPs never reach the host.
func TestServiceTypesFollowTheFlags(t *testing.T) {
	local := corev1.ServiceExternalTrafficPolicyLocal
	svc := func(typ corev1.ServiceType) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: corev1.ServiceSpec{
				Type: typ, ClusterIP: "10.96.4.4", ExternalIPs: []string{"203.0.113.9"},
				ExternalTrafficPolicy: local, LoadBalancerSourceRanges: []string{"198.51.100.0/24"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}},
			},
		}
	}
	for _, tc := range []struct {
		typ                    corev1.ServiceType
		nodePorts, lbs         bool
		wantType               corev1.ServiceType
		wantNodePort           int32
		wantPolicy, wantRanges bool
	}{
		{corev1.ServiceTypeNodePort, false, false, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeNodePort, true, false, corev1.ServiceTypeNodePort, 30080, true, false},
		{corev1.ServiceTypeNodePort, false, true, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeLoadBalancer, true, false, corev1.ServiceTypeClusterIP, 0, false, false},
		{corev1.ServiceTypeLoadBalancer, false, true, corev1.ServiceTypeLoadBalancer, 30080, true, true},
		{corev1.ServiceTypeClusterIP, true, true, corev1.ServiceTypeClusterIP, 0, false, false},
	} {
		s := &Syncer{Twin: syncer.Twin[*corev1.Service]{Kind: Kind, Pair: &syncer.Pair{
			Config: &config.Config{SyncNodePorts: tc.nodePorts, SyncLoadBalancers: tc.lbs},
			Names:  translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"},
		}}}
		h := s.hostService(svc(tc.typ))
		name := fmt.Sprintf("%s with node ports %v, load balancers %v", tc.typ, tc.nodePorts, tc.lbs)
		if h.Spec.Type != tc.wantType || h.Spec.Ports[0].NodePort != tc.wantNodePort {
			t.Errorf("%s: host type %s node port %d, want %s %d", name, h.Spec.Type, h.Spec.Ports[0].NodePort, tc.wantType, tc.wantNodePort)
		}
		if (h.Spec.ExternalTrafficPolicy == local) != tc.wantPolicy || (len(h.Spec.LoadBalancerSourceRanges) > 0) != tc.wantRanges {
			t.Errorf("%s: traffic policy %q, source ranges %v", name, h.Spec.ExternalTrafficPolicy, h.Spec.LoadBalancerSourceRanges)
		}
		if len(h.Spec.ExternalIPs) != 0 {
			t.Errorf("%s: external IPs %v reach the host", name, h.Spec.ExternalIPs)
		}
	}
}

func TestTakenTellsAddressFromNodePort(t *testing.T) {
	gk := schema.GroupKind{Kind: "Service"}
	invalid := func(errs ...*field.Error) error { return apierrors.NewInvalid(gk, "web", errs) }
	nodePort := func(i int) *field.Path { return field.NewPath("spec", "ports").Index(i).Child("nodePort") }
	for name, tc := range map[string]struct {
		err       error
		wantIP    bool
		wantPorts map[int]string
	}{
		"node port": {fmt.Errorf("creating host Service web: %w", invalid(field.Invalid(nodePort(0), 30080, "provided port is already allocated"))),
			false, map[int]string{0: "provided port is already allocated"}},
		"node port out of the host's range": {invalid(field.Invalid(nodePort(1), 20000, "provided port is not in the valid range. The range of valid ports is 30000-32767")),
			false, map[int]string{1: "provided port is not in the valid range. The range of valid ports is 30000-32767"}},
		"address": {invalid(field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), "10.96.0.10", "failed to allocate IP 10.96.0.10: provided IP is already allocated")),
			true, nil},
		"both": {invalid(field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), "10.96.0.10", "provided IP is already allocated"), field.Invalid(nodePort(0), 30080, "provided port is already allocated")),
			true, map[int]string{0: "provided port is already allocated"}},
		"health check port is not a service port": {invalid(field.Invalid(field.NewPath("spec", "healthCheckNodePort"), 30080, "provided port is already allocated")),
			false, nil},
		"other":     {invalid(field.Invalid(field.NewPath("spec", "ports").Index(0).Child("port"), 0, "must be between 1 and 65535")), false, nil},
		"forbidden": {apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "web", fmt.Errorf("exceeded quota")), false, nil},
		"none":      {nil, false, nil},
	} {
		gotIP, gotPorts := taken(tc.err)
		if gotIP != tc.wantIP || !maps.Equal(gotPorts, tc.wantPorts) {
			t.Errorf("%s: taken = %v, %v; want %v, %v", name, gotIP, gotPorts, tc.wantIP, tc.wantPorts)
		}
	}
}

// hostPorts is a fake host API server's node port allocator: it refuses
// node ports that other Services hold and chooses for ports that ask for
// none, as the real one does.
type hostPorts struct {
	held map[int32]bool
	next int32
}

func (a *hostPorts) allocate(svc *corev1.Service, own *corev1.Service) error {
	if !exposed(svc.Spec.Type) {
		return nil
	}
	var ownPorts []corev1.ServicePort
	var ownHealth int32
	if own != nil {
		ownPorts, ownHealth = own.Spec.Ports, own.Spec.HealthCheckNodePort
	}
	var errs field.ErrorList
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		switch {
		case p.NodePort == 0:
			p.NodePort = a.next
			a.next++
		case a.held[p.NodePort] && !slices.ContainsFunc(ownPorts, func(o corev1.ServicePort) bool { return o.NodePort == p.NodePort }):
			errs = append(errs, field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort, "provided port is already allocated"))
		}
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, errs)
	}
	// Then the health check node port, refused as the real one refuses it.
	switch hc := svc.Spec.HealthCheckNodePort; {
	case !needsHealthCheck(svc):
		svc.Spec.HealthCheckNodePort = 0
	case hc == 0:
		svc.Spec.HealthCheckNodePort = a.next
		a.next++
	case a.held[hc] && hc != ownHealth:
		return apierrors.NewInternalError(fmt.Errorf("failed to allocate requested HealthCheck NodePort %d: provided port is already allocated", hc))
	}
	return nil
}

func (a *hostPorts) funcs(patches *int) interceptor.Funcs {
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := a.allocate(obj.(*corev1.Service), nil); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			*patches++
			now := &corev1.Service{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), now); err != nil {
				return err
			}
			if err := a.allocate(obj.(*corev1.Service), now); err != nil {
				return err
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}
}

// NodePort and LoadBalancer Services against a host that holds some node
// ports: the host's ports win, a tenant's later choice is tried on the host,
// types follow the virtual Service, the load balancer's status flows up.
func TestReconcileFollowsTheHostsNodePortsAndStatus(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	virtual := func(typ corev1.ServiceType, nodePort int32) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, UID: "u-web"},
			Spec: corev1.ServiceSpec{Type: typ, ClusterIP: "10.96.4.4", Selector: map[string]string{"app": "web"},
				ExternalIPs: []string{"203.0.113.9"}, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: nodePort}}},
		}
	}
	twin := func(v *corev1.Service, nodePort int32, ingress ...corev1.LoadBalancerIngress) *corev1.Service {
		s := &Syncer{Twin: syncer.Twin[*corev1.Service]{Kind: Kind, Pair: &syncer.Pair{Names: names, Config: &config.Config{SyncNodePorts: true, SyncLoadBalancers: true}}}}
		h := s.hostService(v)
		h.Spec.Ports[0].NodePort = nodePort
		h.Status.LoadBalancer.Ingress = ingress
		return h
	}
	local := func(v *corev1.Service, health int32) *corev1.Service {
		v.Spec.ExternalTrafficPolicy, v.Spec.HealthCheckNodePort = corev1.ServiceExternalTrafficPolicyLocal, health
		return v
	}
	lbIngress := corev1.LoadBalancerIngress{IP: "192.0.2.10"}
	clusterIP := virtual(corev1.ServiceTypeClusterIP, 0)
	clusterIP.Spec.ExternalTrafficPolicy = ""

	for name, tc := range map[string]struct {
		flags        config.Config
		held         []int32
		virtual      *corev1.Service
		cached       *corev1.Service // what a lagging virtual cache still shows (nil: the same)
		host         *corev1.Service // the twin before (nil: none)
		wantType     corev1.ServiceType
		wantNodePort int32 // on both sides, unless wantVirtual says otherwise
		wantVirtual  int32
		wantEvent    []string // words of the one warning event, if any
		wantIngress  []corev1.LoadBalancerIngress
		wantHealth   [2]int32 // health check node ports: host, virtual
	}{
		"a free node port is kept": {
			flags: config.Config{SyncNodePorts: true}, virtual: virtual(corev1.ServiceTypeNodePort, 30080),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 30080,
		},
		"a node port taken on the host is the host's choice, on both sides": {
			flags: config.Config{SyncNodePorts: true}, held: []int32{30080}, virtual: virtual(corev1.ServiceTypeNodePort, 30080),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 31000,
		},
		"a tenant's later free node port moves the host twin": {
			flags: config.Config{SyncNodePorts: true}, virtual: virtual(corev1.ServiceTypeNodePort, 30500),
			host:     twin(virtual(corev1.ServiceTypeNodePort, 0), 31234),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 30500,
		},
		"a tenant's later taken node port goes back, with an event": {
			flags: config.Config{SyncNodePorts: true}, held: []int32{30555}, virtual: virtual(corev1.ServiceTypeNodePort, 30555),
			host:     twin(virtual(corev1.ServiceTypeNodePort, 0), 31234),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 31234,
			wantEvent: []string{"NodePortNotAvailable", "node port 30555 of port http", "already allocated", "stays 31234"},
		},
		"a cache that has not seen the alignment is not a tenant's choice": {
			flags: config.Config{SyncNodePorts: true}, held: []int32{30080}, virtual: virtual(corev1.ServiceTypeNodePort, 31234),
			cached:   virtual(corev1.ServiceTypeNodePort, 30080),
			host:     twin(virtual(corev1.ServiceTypeNodePort, 0), 31234),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 31234,
		},
		"NodePort without --sync-node-ports is a ClusterIP on the host": {
			flags: config.Config{SyncLoadBalancers: true}, virtual: virtual(corev1.ServiceTypeNodePort, 30080),
			wantType: corev1.ServiceTypeClusterIP, wantNodePort: 0, wantVirtual: 30080,
			wantEvent: []string{"ServiceTypeNotAvailable", "type NodePort is served as ClusterIP", "--sync-node-ports is off"},
		},
		"LoadBalancer without --sync-load-balancers is a ClusterIP on the host": {
			flags: config.Config{SyncNodePorts: true}, virtual: virtual(corev1.ServiceTypeLoadBalancer, 30080),
			wantType: corev1.ServiceTypeClusterIP, wantNodePort: 0, wantVirtual: 30080,
			wantEvent: []string{"ServiceTypeNotAvailable", "type LoadBalancer is served as ClusterIP", "--sync-load-balancers is off"},
		},
		"back to ClusterIP": {
			flags: config.Config{SyncNodePorts: true}, virtual: clusterIP,
			host:     twin(virtual(corev1.ServiceTypeNodePort, 0), 31234),
			wantType: corev1.ServiceTypeClusterIP, wantNodePort: 0,
		},
		"ClusterIP to NodePort on a taken port": {
			flags: config.Config{SyncNodePorts: true}, held: []int32{30080}, virtual: virtual(corev1.ServiceTypeNodePort, 30080),
			host:     twin(clusterIP, 0),
			wantType: corev1.ServiceTypeNodePort, wantNodePort: 31000,
			wantEvent: []string{"NodePortNotAvailable", "node port 30080 of port http", "stays 31000"},
		},
		"the host checks health on the virtual Service's port": {
			flags: config.Config{SyncLoadBalancers: true}, virtual: local(virtual(corev1.ServiceTypeLoadBalancer, 31234), 30100),
			wantType: corev1.ServiceTypeLoadBalancer, wantNodePort: 31234, wantHealth: [2]int32{30100, 30100},
		},
		"a health check port taken on the host is the host's choice, told": {
			flags: config.Config{SyncLoadBalancers: true}, held: []int32{30100}, virtual: local(virtual(corev1.ServiceTypeLoadBalancer, 31234), 30100),
			wantType: corev1.ServiceTypeLoadBalancer, wantNodePort: 31234, wantHealth: [2]int32{31000, 30100},
			wantEvent: []string{"HealthCheckNodePortNotAligned", "30100 is not available", "node port 31000"},
		},
		"becoming Local asks the host for the virtual Service's health check port": {
			flags: config.Config{SyncLoadBalancers: true}, virtual: local(virtual(corev1.ServiceTypeLoadBalancer, 31234), 30100),
			host:     twin(virtual(corev1.ServiceTypeLoadBalancer, 0), 31234),
			wantType: corev1.ServiceTypeLoadBalancer, wantNodePort: 31234, wantHealth: [2]int32{30100, 30100},
		},
		"back from Local frees the host's health check port": {
			flags: config.Config{SyncLoadBalancers: true}, virtual: virtual(corev1.ServiceTypeLoadBalancer, 31234),
			host:     twin(local(virtual(corev1.ServiceTypeLoadBalancer, 0), 30100), 31234),
			wantType: corev1.ServiceTypeLoadBalancer, wantNodePort: 31234,
		},
		"a load balancer's status flows up": {
			flags: config.Config{SyncLoadBalancers: true}, virtual: virtual(corev1.ServiceTypeLoadBalancer, 31234),
			host:     twin(virtual(corev1.ServiceTypeLoadBalancer, 0), 31234, lbIngress),
			wantType: corev1.ServiceTypeLoadBalancer, wantNodePort: 31234, wantIngress: []corev1.LoadBalancerIngress{lbIngress},
		},
	} {
		t.Run(name, func(t *testing.T) {
			ports := &hostPorts{held: map[int32]bool{}, next: 31000}
			for _, p := range tc.held {
				ports.held[p] = true
			}
			var hostPatches, statusWrites int
			hostB := fake.NewClientBuilder().WithInterceptorFuncs(ports.funcs(&hostPatches)).WithStatusSubresource(&corev1.Service{})
			if tc.host != nil {
				hostB = hostB.WithObjects(tc.host)
			}
			host := hostB.Build()
			countStatus := interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				statusWrites++
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			}}
			live := fake.NewClientBuilder().WithObjects(tc.virtual).WithStatusSubresource(&corev1.Service{}).WithInterceptorFuncs(countStatus).Build()
			cache := client.Client(live)
			if tc.cached != nil {
				cache = fake.NewClientBuilder().WithObjects(tc.cached).WithStatusSubresource(&corev1.Service{}).Build()
			}
			recorder := events.NewFakeRecorder(10)
			flags := tc.flags
			s := New(&syncer.Pair{Config: &flags, Names: names, Virtual: cache, VirtualReader: live, Host: host, HostReader: host, Events: recorder})

			for range 2 { // the second round must find nothing to do
				if _, err := s.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
					t.Fatal(err)
				}
			}
			h, v := &corev1.Service{}, &corev1.Service{}
			if err := host.Get(context.Background(), types.NamespacedName{Namespace: "vc-demo", Name: names.HostName(key.Namespace, key.Name)}, h); err != nil {
				t.Fatal(err)
			}
			if err := live.Get(context.Background(), key, v); err != nil {
				t.Fatal(err)
			}
			wantVirtual := tc.wantNodePort
			if tc.wantVirtual != 0 {
				wantVirtual = tc.wantVirtual
			}
			if h.Spec.Type != tc.wantType || h.Spec.Ports[0].NodePort != tc.wantNodePort || v.Spec.Ports[0].NodePort != wantVirtual {
				t.Errorf("host %s on node port %d, virtual on %d; want host %s on %d, virtual on %d",
					h.Spec.Type, h.Spec.Ports[0].NodePort, v.Spec.Ports[0].NodePort, tc.wantType, tc.wantNodePort, wantVirtual)
			}
			if got := [2]int32{h.Spec.HealthCheckNodePort, v.Spec.HealthCheckNodePort}; got != tc.wantHealth {
				t.Errorf("health check node ports (host, virtual) %v, want %v", got, tc.wantHealth)
			}
			if len(h.Spec.ExternalIPs) != 0 {
				t.Errorf("external IPs %v reached the host", h.Spec.ExternalIPs)
			}
			if exposed(h.Spec.Type) != (h.Spec.ExternalTrafficPolicy != "") {
				t.Errorf("host %s with externalTrafficPolicy %q", h.Spec.Type, h.Spec.ExternalTrafficPolicy)
			}
			if !equality.Semantic.DeepEqual(v.Status.LoadBalancer.Ingress, tc.wantIngress) || statusWrites > 1 {
				t.Errorf("virtual load balancer %v after %d status writes, want %v after at most one", v.Status.LoadBalancer.Ingress, statusWrites, tc.wantIngress)
			}
			if tc.cached != nil && hostPatches != 0 {
				t.Errorf("a stale cached copy was pushed to the host (%d patches)", hostPatches)
			}
			close(recorder.Events)
			var said []string
			for e := range recorder.Events {
				said = append(said, e)
			}
			switch {
			case len(tc.wantEvent) == 0 && len(said) > 0:
				t.Errorf("events %q, want none", said)
			case len(tc.wantEvent) > 0 && len(said) != 1:
				t.Errorf("events %q, want one with %q", said, tc.wantEvent)
			case len(tc.wantEvent) > 0:
				for _, w := range tc.wantEvent {
					if !strings.Contains(said[0], w) {
						t.Errorf("event %q does not say %q", said[0], w)
					}
				}
			}
		})
	}
}

// A change to a type the host does not serve is told, as a create is; a
// Service that stays as it was is not told again.
func TestATypeChangeToOneNotAllowedIsTold(t *testing.T) {
	names := translate.Translator{Cluster: "demo", HostNamespace: "vc-demo"}
	key := types.NamespacedName{Namespace: "shop", Name: "web"}
	v := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, UID: "u-web"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.4.4", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	live := fake.NewClientBuilder().WithObjects(v).WithStatusSubresource(&corev1.Service{}).Build()
	host := fake.NewClientBuilder().WithStatusSubresource(&corev1.Service{}).Build()
	recorder := events.NewFakeRecorder(10)
	s := New(&syncer.Pair{Config: &config.Config{}, Names: names, Virtual: live, VirtualReader: live, Host: host, HostReader: host, Events: recorder})
	round := func() {
		t.Helper()
		if _, err := s.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	round()
	if err := live.Get(context.Background(), key, v); err != nil {
		t.Fatal(err)
	}
	v.Spec.Type, v.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080
	if err := live.Update(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	round()
	round()
	close(recorder.Events)
	var said []string
	for e := range recorder.Events {
		said = append(said, e)
	}
	if len(said) != 1 || !strings.Contains(said[0], "--sync-node-ports is off") {
		t.Errorf("events %q, want one naming --sync-node-ports", said)
	}
}
