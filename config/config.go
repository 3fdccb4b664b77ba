// Package config embeds warren's own deployment manifests, so that the CLI
// can install the CRDs on a local plane without a checkout.
package config

import "embed"

// CRDs holds the CustomResourceDefinitions generated from the API types
// (crd/bases/*.yaml).
//
//go:embed crd/bases/*.yaml
var CRDs embed.FS
