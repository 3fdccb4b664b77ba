package render

import (
	v1alpha1 "github.com/warren-dev/warren/reconciler/api/v1alpha1"
	"github.com/warren-dev/warren/reconciler/pki"
)

// Names are the host object names of one virtual cluster (the brief's
// naming contract), for the stages that create or read them.
type Names struct {
	Namespace            string
	StatefulSet          string
	Pod                  string
	Service              string
	HeadlessService      string
	PKISecret            string
	KubeconfigSecret     string
	SyncerServiceAccount string
	InitManifests        string
	SyncerConfig         string
	DataClaim            string
}

// NamesFor returns the host names of a defaulted VirtualCluster.
func NamesFor(vc *v1alpha1.VirtualCluster) Names {
	n := vc.Name
	ns := vc.Spec.HostNamespace
	if ns == "" {
		ns = "vc-" + n
	}
	return Names{
		Namespace:            ns,
		StatefulSet:          n,
		Pod:                  n + "-0",
		Service:              n,
		HeadlessService:      n + "-headless",
		PKISecret:            pki.SecretName(n),
		KubeconfigSecret:     n + "-kubeconfig",
		SyncerServiceAccount: n + "-syncer",
		InitManifests:        n + "-init-manifests",
		SyncerConfig:         n + "-syncer",
		DataClaim:            "data-" + n + "-0",
	}
}
