package localplane

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/warren-dev/warren/internal/image"
	"github.com/warren-dev/warren/reconciler/render"
)

// AgnhostImage is the Kubernetes e2e test image real nodes hold, as tenant
// workload: `agnhost netexec` serves HTTP, `agnhost connect` dials.
const AgnhostImage = "registry.k8s.io/e2e-test-images/agnhost:2.63"

// nodeImages are the images every real node holds, built from the tools'
// binaries, plus the caller's: the k8s distro's control plane of the tools'
// Kubernetes version under the exact names warren renders, the sandbox
// image, and agnhost.
func nodeImages(tools string, extra []image.Spec) ([]image.Spec, error) {
	version, err := kubeVersion(tools)
	if err != nil {
		return nil, err
	}
	names := render.K8sImagesFor(version)
	bin := func(name string) string { return filepath.Join(tools, name) }
	specs := []image.Spec{
		{Ref: names.APIServer, Binary: bin("kube-apiserver"), Path: "/usr/local/bin/kube-apiserver"},
		{Ref: names.ControllerManager, Binary: bin("kube-controller-manager"), Path: "/usr/local/bin/kube-controller-manager"},
		{Ref: names.Etcd, Binary: bin("etcd"), Path: "/usr/local/bin/etcd"},
		{Ref: names.CoreDNS, Binary: bin("coredns"), Path: "/coredns"},
		{Ref: SandboxImage, Binary: bin("agnhost"), Path: "/agnhost", Entrypoint: []string{"/agnhost", "pause"}},
		{Ref: AgnhostImage, Binary: bin("agnhost"), Path: "/agnhost"},
	}
	return append(specs, extra...), nil
}

// KubeVersion is the Kubernetes version of the tools' binaries (the tag of
// the control-plane images real nodes hold).
func KubeVersion() (string, error) {
	tools, err := ToolsDir("")
	if err != nil {
		return "", err
	}
	return kubeVersion(tools)
}

func kubeVersion(tools string) (string, error) {
	out, err := exec.Command(filepath.Join(tools, "kube-apiserver"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("asking kube-apiserver for its version: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "Kubernetes ")
	if !ok {
		return "", fmt.Errorf("kube-apiserver --version said %q", out)
	}
	return v, nil
}

// imageArchive is the archive of specs, built once per set of binaries
// into the user's cache (rebuilt when a binary changes).
func imageArchive(specs []image.Spec) (string, error) {
	h := sha256.New()
	for _, s := range specs {
		st, err := os.Stat(s.Binary)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", s.Ref, err)
		}
		fmt.Fprintf(h, "%s %s %s %v %v %q %d %d\n", s.Ref, s.Binary, s.Path, s.Entrypoint, s.Cmd, s.User, st.Size(), st.ModTime().UnixNano())
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "warren", "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:16]+".tar")
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	return file, image.WriteArchive(file, specs...)
}

// archiveRefs are the image names an archive holds (its manifest's tags).
func archiveRefs(file string) ([]string, error) {
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(file) })
	if err != nil {
		return nil, fmt.Errorf("reading the image archive %s: %w", file, err)
	}
	var refs []string
	for _, m := range manifest {
		refs = append(refs, m.RepoTags...)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("the image archive %s names no image", file)
	}
	return refs, nil
}
