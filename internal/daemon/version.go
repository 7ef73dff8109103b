package daemon

import (
	"runtime"
	"runtime/debug"
)

// Version returns the module version of the running binary ("devel" for a
// build from a work tree), with the VCS revision when the build recorded
// one.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}

// GoVersion returns the Go version the binary was built with.
func GoVersion() string { return runtime.Version() }
