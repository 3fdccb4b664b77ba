// Package kubeconfig exports the virtual cluster's kubeconfig into the host
// Secret <cluster>-kubeconfig (keys "config" and "ca.crt") once the virtual
// API answers, with the server set to the cluster's in-host Service address.
//
// It never overwrites a Secret it did not create, and never logs the
// credentials it writes.
package kubeconfig

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/warren-dev/warren/syncer/translate"
)

// Kind is the origin kind marked on the exported Secret.
const Kind = "Kubeconfig"

// Exporter writes the Secret and keeps it current.
type Exporter struct {
	Virtual     *rest.Config // the syncer's own connection to the virtual API
	Host        client.Client
	HostReader  client.Reader
	Names       translate.Translator
	SecretName  string
	ServiceName string
	Log         logr.Logger
}

// NeedLeaderElection: only the leader writes.
func (e *Exporter) NeedLeaderElection() bool { return true }

// Start exports once the API is ready, then checks every minute.
func (e *Exporter) Start(ctx context.Context) error {
	for {
		if err := e.Export(ctx); err != nil {
			e.Log.Error(err, "exporting the kubeconfig", "secret", e.SecretName)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Minute):
		}
	}
}

// Export writes the Secret if the virtual API is ready and it changed.
func (e *Exporter) Export(ctx context.Context) error {
	dc, err := discovery.NewDiscoveryClientForConfig(e.Virtual)
	if err != nil {
		return err
	}
	if body, err := dc.RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil || string(body) != "ok" {
		return fmt.Errorf("virtual API not ready yet: %w", err)
	}
	data, err := e.render()
	if err != nil {
		return err
	}
	key := types.NamespacedName{Namespace: e.Names.HostNamespace, Name: e.SecretName}
	existing := &corev1.Secret{}
	err = e.HostReader.Get(ctx, key, existing)
	want := &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: data}
	want.Name, want.Namespace = key.Name, key.Namespace
	e.Names.Mark(want, translate.Origin{Kind: Kind, Name: e.Names.Cluster})
	switch {
	case apierrors.IsNotFound(err):
		if err := e.Host.Create(ctx, want); err != nil {
			return fmt.Errorf("creating Secret %s: %w", key, err)
		}
		e.Log.Info("exported the kubeconfig", "secret", key.String())
		return nil
	case err != nil:
		return fmt.Errorf("reading Secret %s: %w", key, err)
	case !e.Names.Owns(existing, Kind, "", e.Names.Cluster):
		return fmt.Errorf("Secret %s exists and was not written by this syncer; leaving it untouched", key)
	case bytes.Equal(existing.Data["config"], data["config"]) && bytes.Equal(existing.Data["ca.crt"], data["ca.crt"]):
		return nil
	}
	want.ResourceVersion = existing.ResourceVersion
	if err := e.Host.Update(ctx, want); err != nil {
		return fmt.Errorf("updating Secret %s: %w", key, err)
	}
	return nil
}

// render builds the kubeconfig: the syncer's own virtual credentials, with
// the server the cluster has inside the host.
func (e *Exporter) render() (map[string][]byte, error) {
	virtual := rest.CopyConfig(e.Virtual)
	if err := rest.LoadTLSFiles(virtual); err != nil {
		return nil, fmt.Errorf("reading the virtual API's certificates: %w", err)
	}
	ca := virtual.CAData
	server := fmt.Sprintf("https://%s.%s.svc:443", e.ServiceName, e.Names.HostNamespace)
	name := e.Names.Cluster
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{
		ClientCertificateData: virtual.CertData,
		ClientKeyData:         virtual.KeyData,
		Token:                 virtual.BearerToken,
	}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("writing kubeconfig: %w", err)
	}
	return map[string][]byte{"config": out, "ca.crt": ca}, nil
}
