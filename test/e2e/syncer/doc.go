// Package e2e holds the syncer's end-to-end tests and benchmarks: a host
// plane (apiserver, controller-manager, scheduler, kwok nodes) and a virtual
// plane (apiserver and controller-manager, no scheduler, the host's service
// CIDR) from internal/localplane, with warren-syncer built and run between them as
// a real process. Nothing here is used outside tests.
package e2e
