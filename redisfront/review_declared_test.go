package redisfront_test

import (
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/redisfront"
)

// A request that declares more than the bound (a bulk length, or more
// arguments than the bytes left could hold) is refused as soon as its
// header arrives, as Redis refuses a bulk length over
// proto-max-bulk-len: before, the front waited for the bytes, and a client
// that sent "$99999999999" got no reply until the idle timeout.
func TestReviewDeclaredOversizeRefusedAtOnce(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	for _, tc := range []struct{ name, req, want string }{
		{"bulk length", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\nab", "-ERR Protocol error: invalid bulk length"},
		{"bulk length that wraps around", "*2\r\n$4\r\nECHO\r\n$9223372036854775807\r\nab", "-ERR Protocol error: invalid bulk length"},
		{"bulk just over", "*2\r\n$4\r\nECHO\r\n$65537\r\nab", "-ERR Protocol error: invalid bulk length"},
		{"argument count", "*100000000\r\n$4\r\nECHO\r\n", "-ERR Protocol error: invalid bulk length"},
	} {
		r := dialRaw(t, f.addr)
		_ = r.c.SetDeadline(time.Now().Add(3 * time.Second))
		r.send(t, tc.req)
		if got := r.line(t); got != tc.want {
			t.Fatalf("%s: %q", tc.name, got)
		}
	}
	// The front is still up (the wrap-around took the daemon down).
	r := dialRaw(t, f.addr)
	r.cmd(t, "PING")
	if got := r.line(t); got != "+PONG" {
		t.Fatalf("PING after: %q", got)
	}
	// A request within the bound still waits for its bytes.
	r = dialRaw(t, f.addr)
	r.send(t, "*2\r\n$4\r\nECHO\r\n$60000\r\nab")
	time.Sleep(50 * time.Millisecond)
	r.send(t, string(make([]byte, 59998))+"\r\n")
	if got := r.line(t); got != "$60000" {
		t.Fatalf("a request of 60 kB under a bound of 64 KiB: %.40q", got)
	}
}
