package localplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
)

// kwokCRDKinds are the kinds of kwok's kubelet-API simulation that kwok
// watches (--enable-crds): a test says with them, per pod, which file is a
// container's log, in which local directory exec runs a command and which
// local listener a port forward reaches.
var kwokCRDKinds = []string{
	"Logs", "ClusterLogs", "Attach", "ClusterAttach",
	"Exec", "ClusterExec", "PortForward", "ClusterPortForward",
}

// InstallCRDFile creates every CustomResourceDefinition of a multi-document
// YAML file (kept beside a tool in the tools cache, say) and waits until
// each is Established.
func InstallCRDFile(ctx context.Context, cfg *rest.Config, path string) error {
	return installCRDs(ctx, cfg, path)
}

// installCRDs creates every CustomResourceDefinition of a multi-document
// YAML file and waits until each is Established.
func installCRDs(ctx context.Context, cfg *rest.Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	var names []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if crd.Name == "" {
			continue // an empty document
		}
		if _, err := crds.Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
		}
		names = append(names, crd.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range names {
		for !established(ctx, crds, name) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s was not established within 30s", name)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func established(ctx context.Context, crds interface {
	Get(context.Context, string, metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
}, name string) bool {
	got, err := crds.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range got.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
