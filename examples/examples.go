// Package examples embeds the bundled example fleet repository, so that
// `warren demo` runs on a fresh machine with nothing else at hand.
package examples

import "embed"

// Fleet is examples/fleet: two teams, three clusters, two policies.
//
//go:embed all:fleet
var Fleet embed.FS
