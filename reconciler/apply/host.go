package apply

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DetectServiceCIDRs returns the host's service IP ranges. It reads the
// ServiceCIDR API where the host serves it; otherwise it asks the API
// server, with a dry run, to create a Service at an address outside any
// plausible range and reads the valid range from the refusal. Nothing is
// written either way.
func DetectServiceCIDRs(ctx context.Context, c client.Client) ([]string, error) {
	cidrs, err := serviceCIDRsFromAPI(ctx, c)
	if err == nil && len(cidrs) > 0 {
		return cidrs, nil
	}
	if err != nil && !meta.IsNoMatchError(err) && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("apply: read ServiceCIDRs: %w", err)
	}
	return serviceCIDRsFromRefusal(ctx, c)
}

func serviceCIDRsFromAPI(ctx context.Context, c client.Client) ([]string, error) {
	list := &networkingv1.ServiceCIDRList{}
	if err := c.List(ctx, list); err != nil {
		return nil, err
	}
	// The API server's own range ("kubernetes") first, then any added.
	slices.SortFunc(list.Items, func(a, b networkingv1.ServiceCIDR) int {
		switch {
		case a.Name == b.Name:
			return 0
		case a.Name == "kubernetes":
			return -1
		case b.Name == "kubernetes":
			return 1
		case a.Name < b.Name:
			return -1
		}
		return 1
	})
	var out []string
	for _, sc := range list.Items {
		if sc.DeletionTimestamp != nil {
			continue
		}
		for _, cidr := range sc.Spec.CIDRs {
			if !slices.Contains(out, cidr) {
				out = append(out, cidr)
			}
		}
	}
	return out, nil
}

var validRange = regexp.MustCompile(`valid IPs is ([0-9A-Fa-f:.]+/[0-9]+)`)

// probeClusterIP is a unicast address no host picks for its services.
const probeClusterIP = "203.0.113.254" // TEST-NET-3, RFC 5737

func serviceCIDRsFromRefusal(ctx context.Context, c client.Client) ([]string, error) {
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "warren-cidr-probe-", Namespace: metav1.NamespaceDefault},
		Spec: corev1.ServiceSpec{
			ClusterIP: probeClusterIP,
			Ports:     []corev1.ServicePort{{Port: 443}},
		},
	}
	err := c.Create(ctx, probe, client.DryRunAll)
	if err == nil {
		return nil, errors.New("apply: the host accepted a Service at " + probeClusterIP + "; set the service CIDR by flag")
	}
	m := validRange.FindStringSubmatch(err.Error())
	if m == nil {
		return nil, fmt.Errorf("apply: cannot tell the host's service CIDR from %q; set it by flag", err.Error())
	}
	if _, perr := netip.ParsePrefix(m[1]); perr != nil {
		return nil, fmt.Errorf("apply: the host reported an unreadable service CIDR %q: %w", m[1], perr)
	}
	return []string{m[1]}, nil
}

var validPorts = regexp.MustCompile(`range of valid ports is ([0-9]+-[0-9]+)`)

// probeNodePort is a port no host gives to node ports: below 1024, where
// the node's own services listen.
const probeNodePort = 1

// DetectNodePortRange returns the host's node-port range, as
// "first-last". Kubernetes has no API for it, and a dry run skips the
// range check: the API server is asked to create a NodePort Service on a
// port outside any plausible range, and the range is read from its
// refusal. A refused create writes nothing; a host that accepts the port
// gets the probe deleted at once and an error.
func DetectNodePortRange(ctx context.Context, c client.Client) (string, error) {
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "warren-node-port-probe-", Namespace: metav1.NamespaceDefault},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeNodePort,
			Ports: []corev1.ServicePort{{Port: 443, NodePort: probeNodePort}},
		},
	}
	err := c.Create(ctx, probe)
	if err == nil {
		if err := c.Delete(ctx, probe); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("apply: the host accepted node port %d, and the probe Service default/%s could not be removed: %w", probeNodePort, probe.Name, err)
		}
		return "", fmt.Errorf("apply: the host accepted node port %d; set the node-port range by flag", probeNodePort)
	}
	m := validPorts.FindStringSubmatch(err.Error())
	if m == nil {
		return "", fmt.Errorf("apply: cannot tell the host's node-port range from %q; set it by flag", err.Error())
	}
	return m[1], nil
}
