package redisfront_test

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// front is a node with a Redis front on a loopback port.
type front struct {
	n    *node.Node
	srv  *redisfront.Server
	addr string
	reg  *prometheus.Registry
}

// startFronts starts count nodes of a mesh, each with a front.
func startFronts(t *testing.T, count int, tweak func(cfg *redisfront.Config)) []*front {
	t.Helper()
	nodes := meshtest.Start(t, count, nil)
	var out []*front
	for _, n := range nodes {
		out = append(out, serveFront(t, n, "127.0.0.1:0", tweak))
	}
	return out
}

func serveFront(t *testing.T, n *node.Node, addr string, tweak func(cfg *redisfront.Config)) *front {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := redisfront.Config{Registerer: reg}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := redisfront.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return &front{n: n, srv: srv, addr: ln.Addr().String(), reg: reg}
}

func (f *front) client(t *testing.T, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: f.addr, MaxRetries: -1}
	for _, fn := range opts {
		fn(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	meshtest.Eventually(t, 10*time.Second, what, cond)
}

func needTool(t *testing.T, name string) string { return meshtest.NeedTool(t, name) }

// raw is a plain TCP connection speaking RESP by hand.
type raw struct {
	c  net.Conn
	rd *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{c: c, rd: bufio.NewReader(c)}
}

func (r *raw) send(t *testing.T, s string) {
	t.Helper()
	if _, err := r.c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// cmd sends a command as a RESP array of bulk strings.
func (r *raw) cmd(t *testing.T, args ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("*" + itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	r.send(t, b.String())
}

// line reads one reply line, without its CRLF.
func (r *raw) line(t *testing.T) string {
	t.Helper()
	s, err := r.rd.ReadString('\n')
	if err != nil {
		t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

func itoa(n int) string { return strconv.Itoa(n) }
