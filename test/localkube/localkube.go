// Package localkube gives tests a real local control plane: ForTest starts
// one from internal/localplane for a test and stops it when the test ends.
// The plane itself lives in internal/localplane so that the demo in the
// shipped binary never links the testing package; this package only wraps it
// for tests and must never be imported by non-test code.
package localkube

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/warren-dev/warren/internal/localplane"
)

type (
	// Plane is a running local control plane.
	Plane = localplane.Plane
	// Options says what a plane runs.
	Options = localplane.Options
	// AuditWrite is one write request in a plane's audit log.
	AuditWrite = localplane.AuditWrite
)

// DefaultServiceCIDR is the service range of a plane unless told otherwise.
const DefaultServiceCIDR = localplane.DefaultServiceCIDR

// Names real nodes use (see internal/localplane).
const (
	AgnhostImage      = localplane.AgnhostImage
	SandboxImage      = localplane.SandboxImage
	LocalStorageClass = localplane.LocalStorageClass
)

var (
	// Start starts a plane; prefer ForTest in tests.
	Start = localplane.Start
	// FakeNodeName is the name of the i-th kwok node.
	FakeNodeName = localplane.FakeNodeName
	// IsWriteVerb says whether an API server request verb writes.
	IsWriteVerb = localplane.IsWriteVerb
	// SumCounter sums a Prometheus counter's samples by group.
	SumCounter = localplane.SumCounter
	// RealNodeName is the name of the i-th real node.
	RealNodeName = localplane.RealNodeName
	// KubeVersion is the Kubernetes version of the tools' binaries.
	KubeVersion = localplane.KubeVersion
	// Tool is the path of a program in the tools cache (kubectl, say).
	Tool = localplane.Tool
)

// AgnhostPod is localplane.AgnhostPod: a hardened pod spec running agnhost.
func AgnhostPod(name string, args ...string) corev1.PodSpec {
	return localplane.AgnhostPod(name, args...)
}

// Dial is localplane.Dial: a real packet from an agnhost pod to host:port.
func Dial(podIP, host string, port int) (string, error) { return localplane.Dial(podIP, host, port) }
