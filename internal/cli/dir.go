package cli

import (
	"fmt"
	"io/fs"
	"os"
)

// openDir opens a repository checkout as a file system that cannot be
// escaped by symbolic links.
func openDir(dir string) (fs.FS, func(), error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", dir)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	return r.FS(), func() { r.Close() }, nil
}
