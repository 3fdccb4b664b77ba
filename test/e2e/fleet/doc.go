// Package e2e holds warren's end-to-end stories: a real local host plane
// (internal/localplane, pods run by kwok fake nodes, no container runtime), real
// Git repositories served over smart HTTP and file:// (test/gitserver), and
// warren-reconciler built from cmd/ and run as a real process, killed and
// restarted like one. Its benchmarks measure the reconciler the same way.
//
// It only drives warren from the outside, the way a person or a Deployment
// would: commits to Git, objects on the host, signals to the process. It
// reads the host through the API types, never through the reconciler.s stages.
package e2e
