package fluxe2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/warren-dev/warren/test/flux"
	"github.com/warren-dev/warren/test/testkit"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// readmeOverlay builds an example folder the way its README tells a
// platform team to use it: the README's own overlay (its first YAML block
// that is a kustomization), with the remote base replaced by this
// checkout's folder and only the values a user must fill in (each old →
// new, which must appear in the README) replaced. The example's files are
// used as they are.
func readmeOverlay(t *testing.T, example string, fill map[string]string) []*unstructured.Unstructured {
	t.Helper()
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "examples", example)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var overlay string
	for _, m := range yamlBlock.FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "kind: Kustomization") && strings.Contains(m[1], "kustomize.config.k8s.io") {
			overlay = m[1]
			break
		}
	}
	remote := "https://github.com/warren-dev/warren//examples/" + example + "?ref=v0.1.0"
	if !strings.Contains(overlay, "- "+remote+"\n") {
		t.Fatalf("examples/%s/README.md shows no overlay of %s", example, remote)
	}
	out := t.TempDir()
	rel, err := filepath.Rel(out, dir)
	if err != nil {
		t.Fatal(err)
	}
	overlay = strings.Replace(overlay, remote, rel, 1)
	for old, value := range fill {
		if !strings.Contains(overlay, old) {
			t.Fatalf("examples/%s/README.md's overlay does not hold %q to fill in", example, old)
		}
		overlay = strings.ReplaceAll(overlay, old, value)
	}
	if err := os.WriteFile(filepath.Join(out, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	return flux.Build(t, out)
}
