// Package render turns one admitted VirtualCluster into the host objects
// that run it: warren's embedded kustomize base and components (package
// templates), the components the definition and its policy select, patches
// from the spec, and then the repository's own templates/ overlay, built
// with kustomize in memory. It is pure and deterministic: the same inputs
// give byte-identical YAML. It never touches files, Git or an API server,
// and never generates keys: the PKI Secret is only referenced.
package render
