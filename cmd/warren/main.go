// Command warren is the fleet repository's command line: validate, render
// and plan (see package internal/cli), and demo (package internal/demo).
package main

import (
	"os"

	"github.com/warren-dev/warren/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, demoCommand()))
}
