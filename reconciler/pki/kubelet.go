package pki

import (
	"fmt"
	"net"
)

// KubeletClientName is the common name of the certificate the virtual API
// server presents when it calls the kubelet API (the syncer, for the
// virtual nodes it keeps).
const KubeletClientName = "kube-apiserver-kubelet-client"

// KubeletCredentials are the two ends of the virtual API server's calls to
// the kubelet API the syncer serves.
type KubeletCredentials struct {
	// APIServerClient is the API server's client certificate (client CA). The
	// syncer accepts this one certificate and no other.
	APIServerClient KeyPair
	// Serving is the syncer's serving certificate (server CA, which the API
	// server's --kubelet-certificate-authority names), for the addresses the
	// virtual nodes advertise.
	Serving KeyPair
}

// Kubelet issues the credentials of the kubelet API for a syncer reached at
// addresses (IP addresses or DNS names).
func (b *Bundle) Kubelet(addresses []string) (*KubeletCredentials, error) {
	if len(addresses) == 0 {
		return nil, fmt.Errorf("kubelet serving certificate: no address")
	}
	var ips []net.IP
	var dns []string
	for _, a := range addresses {
		if ip := net.ParseIP(a); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, a)
		}
	}
	var c KubeletCredentials
	var err error
	if c.APIServerClient, err = b.ClientCA.Issue(CertRequest{CommonName: KubeletClientName}); err != nil {
		return nil, err
	}
	if c.Serving, err = b.ServerCA.Issue(CertRequest{CommonName: "warren-syncer-kubelet", Server: true, DNSNames: dns, IPs: ips}); err != nil {
		return nil, err
	}
	return &c, nil
}
