package pki

import (
	"fmt"
	"net"
	"net/netip"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ControlPlaneRequest says where a control plane serves and under which names.
type ControlPlaneRequest struct {
	// Server is the URL its own components dial, e.g. https://127.0.0.1:6443.
	Server string
	// ServiceCIDR is its service range; the first address (the kubernetes
	// Service) is among the serving certificate's addresses.
	ServiceCIDR string
	// SANs are further DNS names or IP addresses tenants reach it by.
	SANs []string
}

// ControlPlane holds the leaf credentials kube-apiserver,
// kube-controller-manager and kube-scheduler run with, all issued from a
// Bundle's CAs. Leaves are cheap and may be issued anew at every start; the
// CAs never change.
type ControlPlane struct {
	// Serving is kube-apiserver's serving certificate.
	Serving KeyPair
	// FrontProxyClient is what kube-apiserver presents to aggregated APIs.
	FrontProxyClient KeyPair
	// Admin (system:masters), ControllerManager and Scheduler are kubeconfigs.
	Admin, ControllerManager, Scheduler []byte
}

// ControlPlane issues the leaf credentials of a control plane.
func (b *Bundle) ControlPlane(req ControlPlaneRequest) (*ControlPlane, error) {
	prefix, err := netip.ParsePrefix(req.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("service CIDR %q: %w", req.ServiceCIDR, err)
	}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IP(prefix.Masked().Addr().Next().AsSlice())}
	for _, san := range req.SANs {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, san)
		}
	}
	cp := &ControlPlane{}
	if cp.Serving, err = b.ServerCA.Issue(CertRequest{CommonName: "kube-apiserver", Server: true, DNSNames: dns, IPs: ips}); err != nil {
		return nil, err
	}
	if cp.FrontProxyClient, err = b.RequestHeaderCA.Issue(CertRequest{CommonName: "front-proxy-client"}); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		out *[]byte
		id  CertRequest
	}{
		{&cp.Admin, CertRequest{CommonName: "warren:admin", Organizations: []string{"system:masters"}}},
		{&cp.ControllerManager, CertRequest{CommonName: "system:kube-controller-manager"}},
		{&cp.Scheduler, CertRequest{CommonName: "system:kube-scheduler"}},
	} {
		client, err := b.ClientCA.Issue(c.id)
		if err != nil {
			return nil, err
		}
		if *c.out, err = Kubeconfig(req.Server, b.ServerCA.CertPEM, client); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// Kubeconfig is a kubeconfig that trusts caPEM at server and authenticates
// with a client certificate.
func Kubeconfig(server string, caPEM []byte, client KeyPair) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: client.CertPEM, ClientKeyData: client.KeyPEM}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	cfg.CurrentContext = "default"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	return data, nil
}
