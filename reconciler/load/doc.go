// Package load reads a fleet repository's files (clusters/, policies/ and
// the optional templates/ overlay) into typed VirtualCluster and TenantPolicy
// documents, strictly, and reports every problem it finds with its file,
// line and field. It only reads the file system it is given: it never talks
// to an API server, never runs Git, and never judges what a definition asks
// for (that is package policy's job).
package load
