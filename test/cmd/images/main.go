// Command images packs static binaries into image archives for `make images`
// and for real nodes, with internal/image (no Docker, no registry):
//
//	images -o bin/images/warren-syncer.tar ghcr.io/warren-dev/warren-syncer:v0.1.0=bin/warren-syncer
//
// Each argument is REF=BINARY; the binary sits at /ko-app/<name> in the image
// and is its entrypoint, as ko lays it out, and the image runs as ko's
// nonroot user (65532) unless -user says otherwise, so a pod with
// runAsNonRoot (warren's reconciler Deployment) starts it. Load an archive with
// `ctr -n k8s.io images import FILE` (or `docker load -i FILE`).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/warren-dev/warren/internal/image"
)

func main() {
	out := flag.String("o", "", "the archive to write")
	user := flag.String("user", "65532:65532", "who the images run as (ko's nonroot default)")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: images -o FILE REF=BINARY...")
		os.Exit(2)
	}
	var specs []image.Spec
	for _, arg := range flag.Args() {
		ref, bin, ok := strings.Cut(arg, "=")
		if !ok || ref == "" || bin == "" {
			fmt.Fprintf(os.Stderr, "images: %q is not REF=BINARY\n", arg)
			os.Exit(2)
		}
		specs = append(specs, image.Spec{Ref: ref, Binary: bin, Path: "/ko-app/" + filepath.Base(bin), User: *user})
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	if err := image.WriteArchive(*out, specs...); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
	for _, s := range specs {
		fmt.Printf("%s -> %s\n", s.Ref, *out)
	}
}
