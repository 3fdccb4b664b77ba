// Package image builds container images from static Go binaries the way ko
// does, with go-containerregistry: one layer holding the binary, an
// entrypoint, and a reproducible digest (every timestamp is zero). It writes
// them as image archives that `ctr images import` (and `docker load`) read.
// It never pulls, pushes or talks to a registry, and never runs Docker.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Spec is one image: a binary at a path, run as the entrypoint.
type Spec struct {
	// Ref is the image's full name and tag, e.g. registry.k8s.io/etcd:3.5.21-0.
	Ref string
	// Binary is the static binary on this machine.
	Binary string
	// Path is where the binary sits in the image (absolute), e.g.
	// /usr/local/bin/etcd; its directory is on the image's PATH.
	Path string
	// Entrypoint and Cmd are the image's defaults; Entrypoint is [Path]
	// when empty.
	Entrypoint, Cmd []string
	// User is who the image runs as unless the pod says otherwise (e.g.
	// "65532:65532", ko's nonroot default); root when empty.
	User string
}

// Build makes the image of s: an empty base, one layer with the binary
// (mode 0755), a world-writable /tmp, and the entrypoint.
func Build(s Spec) (v1.Image, error) {
	if !path.IsAbs(s.Path) {
		return nil, fmt.Errorf("image %s: the binary's path in the image %q is not absolute", s.Ref, s.Path)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return layerTar(s) },
		tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, fmt.Errorf("image %s: layer of %s: %w", s.Ref, s.Binary, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config
	cfg.Entrypoint = s.Entrypoint
	if len(cfg.Entrypoint) == 0 {
		cfg.Entrypoint = []string{s.Path}
	}
	cfg.Cmd = s.Cmd
	cfg.Env = []string{"PATH=" + path.Dir(s.Path) + ":/usr/local/bin:/usr/bin:/bin"}
	cfg.WorkingDir = "/"
	cfg.User = s.User
	cf = cf.DeepCopy()
	cf.Config = cfg
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	return mutate.ConfigFile(img, cf)
}

// layerTar is the layer's file system: the binary's parent directories, the
// binary, and /tmp.
func layerTar(s Spec) (io.ReadCloser, error) {
	bin, err := os.Open(s.Binary)
	if err != nil {
		return nil, err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var zero time.Time
	dirs := []string{"tmp/"}
	for d := path.Dir(s.Path); d != "/"; d = path.Dir(d) {
		dirs = append(dirs, d[1:]+"/")
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		mode := int64(0o755)
		if dirs[i] == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dirs[i], Mode: mode, ModTime: zero}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: s.Path[1:], Mode: 0o755, Size: st.Size(), ModTime: zero}); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tw, bin); err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.Binary, err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

// WriteArchive builds every spec and writes them, each under its Ref, into
// one archive at file (written to a temporary name, then renamed).
func WriteArchive(file string, specs ...Spec) error {
	refs := make(map[name.Reference]v1.Image, len(specs))
	for _, s := range specs {
		ref, err := name.ParseReference(s.Ref, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("image name %q: %w", s.Ref, err)
		}
		img, err := Build(s)
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.MultiRefWrite(refs, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
