// Package v1alpha1 holds warren's API: the VirtualCluster and TenantPolicy
// documents a fleet repository holds, and the host-side Fleet and
// VirtualCluster objects the reconciler writes. It holds types and their
// defaults only; it never talks to an API server or reads files.
//
// +kubebuilder:object:generate=true
// +groupName=warren.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every warren type.
	GroupVersion = schema.GroupVersion{Group: "warren.dev", Version: "v1alpha1"}

	// SchemeBuilder registers warren's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds warren's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
