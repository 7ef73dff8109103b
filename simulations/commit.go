package simulations

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Code identifies the code a run was made with, so that a replay that does
// not reproduce can tell a code change from non-determinism.
type Code struct {
	// Commit is the VCS revision, "" when unknown.
	Commit string `json:"commit,omitempty"`
	// Modified is set when the work tree had uncommitted changes: the
	// commit alone does not say what ran.
	Modified bool `json:"modified,omitempty"`
	// Source says where Commit came from: "build" (stamped in the binary
	// by the go command) or "git" (the repository the process runs in).
	Source string `json:"source,omitempty"`
}

func (c Code) String() string {
	if c.Commit == "" {
		return "unknown commit"
	}
	s := c.Commit
	if len(s) > 12 {
		s = s[:12]
	}
	if c.Modified {
		s += " with uncommitted changes"
	}
	return s
}

// Same reports whether both name the same clean commit.
func (c Code) Same(o Code) bool {
	return c.Commit != "" && c.Commit == o.Commit && !c.Modified && !o.Modified
}

var (
	codeOnce sync.Once
	code     Code
)

// currentCode finds the commit the running code was built from: the go
// command's VCS stamp, else (go test, go run, -buildvcs=false) the git
// checkout the code was compiled from.
func currentCode() Code {
	codeOnce.Do(func() {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					code.Commit, code.Source = s.Value, "build"
				case "vcs.modified":
					code.Modified = s.Value == "true"
				}
			}
			if code.Commit != "" {
				return
			}
			code = Code{}
		}
		code = gitCode(sourceRoot())
	})
	return code
}

// sourceRoot is the directory the module was compiled from, "" when the
// build does not say (-trimpath). The checkout around the working
// directory is not asked: it may be another one, at another commit.
func sourceRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Dir(filepath.Dir(file)) // <root>/simulations/commit.go
}

// gitCode asks git for the commit of the sessionmesh checkout at root.
func gitCode(root string) Code {
	if root == "" {
		return Code{}
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(mod, []byte("module github.com/sessionmesh/sessionmesh\n")) {
		return Code{} // not our source tree (moved since the build)
	}
	top, err := exec.Command("git", "-C", root, "rev-parse", "--show-toplevel").Output()
	if err != nil || !sameDir(strings.TrimSpace(string(top)), root) {
		return Code{} // not a checkout of its own (an export inside another repository)
	}
	rev, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return Code{}
	}
	st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return Code{}
	}
	return Code{Commit: strings.TrimSpace(string(rev)), Modified: len(bytes.TrimSpace(st)) > 0, Source: "git"}
}

// sameDir reports whether a and b name one directory, through symlinks.
func sameDir(a, b string) bool {
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	return errA == nil && errB == nil && ra == rb
}
