package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// rangeInMessage finds the range the API server names when it refuses a
// Service's ClusterIP: "... The range of valid IPs is 10.96.0.0/16".
var rangeInMessage = regexp.MustCompile(`valid IPs is ([0-9a-fA-F.:]+/[0-9]+)`)

// DetectServiceCIDR finds the host's service range: the `kubernetes`
// ServiceCIDR object where the host serves that API, otherwise the range the
// API server names when a dry-run Service asks for an address outside it.
// Nothing is written either way.
func DetectServiceCIDR(ctx context.Context, c client.Client) (string, error) {
	var sc networkingv1.ServiceCIDR
	err := c.Get(ctx, client.ObjectKey{Name: "kubernetes"}, &sc)
	if err == nil && len(sc.Spec.CIDRs) > 0 {
		return sc.Spec.CIDRs[0], nil
	}
	probe := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "warren-service-cidr-probe", Namespace: metav1.NamespaceDefault},
		Spec: corev1.ServiceSpec{
			// An address from the documentation range, outside any real service range.
			ClusterIP: "192.0.2.1",
			Ports:     []corev1.ServicePort{{Port: 443}},
		},
	}
	err = c.Create(ctx, probe, client.DryRunAll)
	if err == nil {
		return "", errors.New("detecting the service CIDR: the API server accepted 192.0.2.1 as a ClusterIP; set --service-cidr")
	}
	if !apierrors.IsInvalid(err) {
		return "", fmt.Errorf("detecting the service CIDR: %w", err)
	}
	if m := rangeInMessage.FindStringSubmatch(err.Error()); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("detecting the service CIDR: the API server's answer names no range (%v); set --service-cidr", err)
}
