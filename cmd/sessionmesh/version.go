package main

import (
	"fmt"
	"io"

	"github.com/sessionmesh/sessionmesh/internal/daemon"
)

const versionUsage = `Usage: sessionmesh version

Prints the module version of this binary ("devel" when built from a work
tree) and the Go version it was built with.
`

func version(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, versionUsage)
			return 0
		}
		fmt.Fprintf(stderr, "sessionmesh version: unexpected argument %q\n\n%s", args[0], versionUsage)
		return 2
	}
	fmt.Fprintf(stdout, "sessionmesh %s (%s)\n", daemon.Version(), daemon.GoVersion())
	return 0
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}
