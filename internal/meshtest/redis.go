package meshtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// ServeRedis serves n's Redis front on a free loopback port until the test
// ends, and returns its host:port.
func ServeRedis(tb testing.TB, n *node.Node, cfg redisfront.Config) string {
	tb.Helper()
	srv, err := redisfront.New(n, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Error(err)
		}
		if err := <-served; err != nil {
			tb.Error(err)
		}
	})
	return ln.Addr().String()
}

// NeedTool returns the path of an external tool a test starts (redis-cli,
// node, php). It skips the test when the tool is missing, except under
// CI=true, where .ci/run installs it and its absence fails the test.
func NeedTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is required under CI=true (.ci/run installs it): %v", name, err)
		}
		tb.Skipf("%s is not installed: %v", name, err)
	}
	return p
}
