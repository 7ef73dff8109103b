package redisfront_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/redisfront"
)

// Bad input gets Redis's error and costs only the offending connection:
// the listener, the peer and other clients go on.
func TestBadInput(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	ctx := context.Background()
	good := f.client(t)
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, send, want string }{
		{"bad multibulk length", "*x\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"negative bulk length", "*1\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length"},
		{"not a bulk", "*1\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'"},
		{"unbalanced quotes", "GET \"k\r\n", "-ERR Protocol error: unbalanced quotes in request"},
		{"huge declared bulk", "*2\r\n$3\r\nGET\r\n$2000000000\r\n" + strings.Repeat("x", 70<<10), "-ERR Protocol error: invalid bulk length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, f.addr)
			r.send(t, tc.send)
			if got := r.line(t); got != tc.want {
				t.Errorf("reply %q, want %q", got, tc.want)
			}
			if _, err := r.rd.ReadByte(); err != io.EOF && !strings.Contains(errString(err), "reset") {
				t.Errorf("connection still open after a protocol error (%v)", err)
			}
		})
	}
	// An empty multibulk request ("*0", or a negative count) is no
	// command: Redis skips it without a reply and keeps the connection,
	// also when it comes in pieces or between two commands of a pipeline.
	r0 := dialRaw(t, f.addr)
	r0.send(t, "*0\r\n*1\r\n$4\r\nPING\r\n*-1\r\n*")
	r0.send(t, "0\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	if got := r0.line(t) + r0.line(t) + r0.line(t); got != "+PONG$1v" {
		t.Errorf("PING and GET around empty requests: %q, want +PONG $1 v", got)
	}
	// Inline commands, as telnet users type them, work.
	r := dialRaw(t, f.addr)
	r.send(t, "GET k\r\n")
	if got := r.line(t) + r.line(t); got != "$1v" {
		t.Errorf("inline GET: %q", got)
	}
	if v := good.Get(ctx, "k").Val(); v != "v" {
		t.Errorf("after bad clients, GET = %q", v)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Beyond MaxClients a connection gets Redis's error; closing one makes
// room. Metrics count what happened.
func TestConnectionLimitAndMetrics(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxClients = 2 })[0]
	a, b := dialRaw(t, f.addr), dialRaw(t, f.addr)
	a.cmd(t, "PING")
	b.cmd(t, "PING")
	a.line(t)
	b.line(t)
	over := dialRaw(t, f.addr)
	if got := over.line(t); got != "-ERR max number of clients reached" {
		t.Errorf("third client: %q", got)
	}
	a.c.Close()
	eventually(t, "room for a client", func() bool {
		c := dialRaw(t, f.addr)
		c.cmd(t, "PING")
		return c.line(t) == "+PONG"
	})
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var rejected, pings float64
	for _, mf := range families {
		switch mf.GetName() {
		case "sessionmesh_redis_connections_rejected_total":
			rejected = mf.GetMetric()[0].GetCounter().GetValue()
		case "sessionmesh_redis_commands_total":
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == "ping" {
					pings = m.GetCounter().GetValue()
				}
			}
		}
	}
	if rejected < 1 || pings < 3 {
		t.Errorf("rejected %v, pings %v", rejected, pings)
	}
	if n := testutil.CollectAndCount(f.reg, "sessionmesh_redis_command_duration_seconds"); n < 1 {
		t.Errorf("no latency histogram")
	}
}

// A silent client is closed after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.IdleTimeout = 200 * time.Millisecond })[0]
	r := dialRaw(t, f.addr)
	start := time.Now()
	if _, err := r.rd.ReadByte(); err == nil {
		t.Fatal("read a byte from an idle connection")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle client closed after %v", d)
	}
}

// With a password, only AUTH (1 or 2 arguments) and HELLO AUTH open the
// connection; go-redis's HELLO 3 falls back to RESP2 with AUTH.
func TestAuth(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.Password = "s3cret-token" })[0]
	ctx := context.Background()
	r := dialRaw(t, f.addr)
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "k"}, "-NOAUTH Authentication required."},
		{[]string{"AUTH", "nope"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "someone", "s3cret-token"}, "-WRONGPASS invalid username-password pair or user is disabled."},
		{[]string{"AUTH", "default", "s3cret-token"}, "+OK"},
		{[]string{"GET", "k"}, "$-1"},
		{[]string{"RESET"}, "+RESET"},
		{[]string{"GET", "k"}, "-NOAUTH Authentication required."},
		{[]string{"AUTH", "s3cret-token"}, "+OK"},
	} {
		r.cmd(t, step.args...)
		if got := r.line(t); got != step.want {
			t.Errorf("%v: %q, want %q", step.args, got, step.want)
		}
	}
	good := f.client(t, func(o *redis.Options) { o.Password = "s3cret-token"; o.Protocol = 3 })
	if err := good.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Errorf("go-redis with a password (HELLO 3, then AUTH): %v", err)
	}
	bad := f.client(t, func(o *redis.Options) { o.Password = "wrong" })
	if err := bad.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Errorf("go-redis with a wrong password: %v", err)
	}
	if got := gatheredValue(t, f, "sessionmesh_redis_auth_failures_total"); got < 3 {
		t.Errorf("auth failures = %v, want >= 3", got)
	}
}

// gatheredValue returns the value of an unlabelled counter of f's registry.
func gatheredValue(t *testing.T, f *front, name string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
