package simulations

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The commit a run records is the one the code was compiled from, wherever
// the process runs: not unknown outside a checkout, and not the commit of
// another checkout it happens to run in (found by the review: verdict.json
// named the working directory's checkout).
func TestCodeIsTheSourceTreesCommit(t *testing.T) {
	root := sourceRoot()
	if root == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("sourceRoot: the test binary does not say where it was compiled from")
		}
		t.Skip("built with -trimpath: the binary does not say where it was compiled from")
	}
	want := ""
	if out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output(); err == nil {
		want = strings.TrimSpace(string(out))
	}
	t.Chdir(t.TempDir()) // no checkout around the working directory
	got := gitCode(sourceRoot())
	if got.Commit != want {
		t.Fatalf("commit %q from %s, want %q (git rev-parse HEAD there)", got.Commit, t.TempDir(), want)
	}
	if want != "" && got.Source != "git" {
		t.Fatalf("source %q, want git", got.Source)
	}
	if gitCode(t.TempDir()).Commit != "" {
		t.Fatal("a directory without our go.mod named a commit")
	}
}
