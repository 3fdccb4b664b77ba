// Package templates embeds warren's built-in kustomize base and components,
// the starting point render builds every virtual cluster from. It holds
// files only; it never renders, substitutes or applies anything.
//
// The files name objects with two placeholders that render replaces before
// kustomize runs: CLUSTER_NAME (the VirtualCluster's name) and
// HOST_NAMESPACE (its host namespace). Everything else is plain kustomize.
package templates

import "embed"

// FS holds base/ and components/<name>/.
//
//go:embed base components
var FS embed.FS

// Placeholders render replaces in every embedded file.
const (
	ClusterName   = "CLUSTER_NAME"
	HostNamespace = "HOST_NAMESPACE"
)
