package node

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// TestNoLibp2pInNodeOrSimulations: the libp2p binding lives in its own
// package (p2pnode), so neither node nor the simulator links libp2p, and a
// Node exports no inbound handler through which an embedder could inject
// gossip no validator saw: inbound traffic reaches a node through the
// Network it was opened with.
func TestNoLibp2pInNodeOrSimulations(t *testing.T) {
	for _, name := range []string{"HandleGossip", "HandleDirect", "PeerUp", "PeerDown"} {
		if _, ok := reflect.TypeFor[*Node]().MethodByName(name); ok {
			t.Errorf("Node exports %s: inbound traffic must come through the Network", name)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goTool); serr != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("no go tool to list dependencies: %v", err)
			}
			t.Skipf("no go tool to list dependencies: %v", err)
		}
	}
	const mod = "github.com/sessionmesh/sessionmesh/"
	out, err := exec.Command(goTool, "list", "-deps", mod+"node", mod+"simulations").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), mod+"persist") {
		t.Fatalf("go list -deps listed %d packages, not node's: %s", len(deps), out)
	}
	for _, p := range deps {
		if strings.Contains(p, "libp2p") || p == mod+"transport" || p == mod+"p2pnode" {
			t.Errorf("node or simulations depends on %s", p)
		}
	}
}
