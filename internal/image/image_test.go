package image

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// An archive holds each image under its name, with the binary as its
// entrypoint, executable, and the same digest every time it is built.
func TestArchiveHoldsTheBinaryUnderItsNameReproducibly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!/not/really\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Ref: "registry.k8s.io/tool:v1.2.3", Binary: bin, Path: "/usr/local/bin/tool", Cmd: []string{"--serve"}, User: "65532:65532"}
	other := Spec{Ref: "example.com/pause:3.10", Binary: bin, Path: "/tool", Entrypoint: []string{"/tool", "pause"}}
	archive := filepath.Join(dir, "images.tar")
	if err := WriteArchive(archive, spec, other); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(spec.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatalf("the archive has no %s: %v", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/tool"}) || !slices.Equal(cf.Config.Cmd, []string{"--serve"}) {
		t.Errorf("entrypoint %v cmd %v", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (a runAsNonRoot pod refuses an image that runs as root)", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	if modes["usr/local/bin/tool"] != 0o755 || modes["tmp/"] != 0o1777 {
		t.Errorf("layer entries %v: want the binary 0755 and /tmp 1777", modes)
	}

	again := filepath.Join(dir, "again.tar")
	if err := WriteArchive(again, spec); err != nil {
		t.Fatal(err)
	}
	img2, err := tarball.ImageFromPath(again, &tag)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Errorf("the same binary built twice gave %s and %s", d1, d2)
	}
}

func TestARelativePathInTheImageIsRefused(t *testing.T) {
	if _, err := Build(Spec{Ref: "x:1", Binary: "/bin/true", Path: "bin/true"}); err == nil {
		t.Error("a relative path in the image was accepted")
	}
}
