package redisfront

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
)

// lone opens a node of its own and serves its front on loopback.
func lone(t testing.TB) (*node.Node, string) {
	t.Helper()
	cfg := p2pnode.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	pn, err := p2pnode.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := pn.Node
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	srv, err := New(n, Config{Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return n, ln.Addr().String()
}

// DEL of a key this peer has not seen ends its generation anyway: a
// session another peer created under it (arriving late, say after a
// partition) is dead on arrival, and the key stays writable.
func TestDelOfUnseenKeyIsFinal(t *testing.T) {
	n, addr := lone(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	if got := c.Del(ctx, "sess:late").Val(); got != 0 {
		t.Fatalf("DEL of a missing key = %d, want 0", got)
	}
	// What a create from another peer meets when it arrives.
	if _, err := n.Create(ctx, node.WithToken(keyToken([]byte("sess:late"), 0))); !errors.Is(err, node.ErrDestroyed) {
		t.Errorf("a create of the deleted generation: %v, want ErrDestroyed", err)
	}
	if err := c.Set(ctx, "sess:late", "new", 0).Err(); err != nil {
		t.Fatalf("SET after DEL: %v", err)
	}
	if v := c.Get(ctx, "sess:late").Val(); v != "new" {
		t.Errorf("GET = %q", v)
	}
}
