package redisfront_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/redisfront"
)

// TestStreamedPipeline: a client streaming a long pipeline of small
// requests in writes that do not align with them (as redis-cli --pipe
// does) gets every reply, although the stream is many times the bound on
// one request. The bound was once counted over whatever redcon's reader
// had buffered, which grew with the stream: the client was cut off after
// a few hundred replies.
func TestStreamedPipeline(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	const count = 6000
	payload := strings.Repeat("x", 1000)
	req := "*2\r\n$4\r\nECHO\r\n$1000\r\n" + payload + "\r\n"
	stream := []byte(strings.Repeat(req, count))
	wrote := make(chan error, 1)
	go func() {
		for len(stream) > 0 {
			n := min(len(stream), 64<<10+7)
			if _, err := c.Write(stream[:n]); err != nil {
				wrote <- err
				return
			}
			stream = stream[n:]
		}
		wrote <- nil
	}()
	rd := bufio.NewReaderSize(c, 64<<10)
	for i := range count {
		line, err := rd.ReadString('\n')
		if err != nil || line != "$1000\r\n" {
			t.Fatalf("reply %d of %d: %q, %v", i, count, line, err)
		}
		if _, err := rd.Discard(1002); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing the pipeline: %v", err)
	}
}
