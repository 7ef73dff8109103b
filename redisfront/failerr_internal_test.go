package redisfront

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/tidwall/redcon"

	"github.com/sessionmesh/sessionmesh/node"
)

// An unavailable key (partial replication: no holder answered) is a
// retryable condition, not an internal error: clients such as go-redis
// retry TRYAGAIN by themselves.
func TestUnavailableAnswersTryAgain(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	var out bytes.Buffer
	conn := &bufConn{wr: redcon.NewWriter(&out)}
	err := fmt.Errorf("node: read x: no holder answered within 200ms: %w", node.ErrUnavailable)
	s.failErr(&client{}, conn, err)
	if err := conn.wr.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "-TRYAGAIN sessionmesh: no holder of this key answered, try again\r\n"; got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
	if conn.errs != 1 {
		t.Fatalf("errors counted %d, want 1", conn.errs)
	}
}
