package redisfront

import (
	"errors"
	"net"
	"testing"
	"time"
)

// The raw path's errors, as net.Conn gives them: a write to a client that
// stopped reading ends at the write deadline with what was written
// counted, and a read blocked when the connection is closed under it
// returns net.ErrClosed.
func TestReviewRawIOErrors(t *testing.T) {
	server, client := loopbackPair(t)
	_ = client.(*net.TCPConn).SetReadBuffer(4096)
	_ = server.(*net.TCPConn).SetWriteBuffer(4096)
	raw := newRawIO(server, 0)
	raw.wTimeout = 200 * time.Millisecond
	big := make([]byte, 32<<20)
	n, err := raw.write(big)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write to a client not reading: %d bytes, %v; want a timeout", n, err)
	}
	if n <= 0 || n >= len(big) {
		t.Fatalf("write ended at the deadline with %d bytes counted", n)
	}

	got := make(chan error, 1)
	go func() {
		_, err := raw.read(make([]byte, 64))
		got <- err
	}()
	time.Sleep(50 * time.Millisecond) // the read waits in the poller
	server.Close()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read when the connection closed: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read blocked in the poller did not end at Close")
	}
}
