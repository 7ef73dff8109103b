package redisfront

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// The write timeout bounds how long a client may stop reading, not how
// long a large reply may take: a client that reads steadily, however
// slowly, gets all of it. Before, the deadline was armed at the write's
// first wait and never moved, so a reply that took longer than wTimeout
// (30 s in the front) to drain into a slow reader was cut in the middle,
// as TestRawIO was on a loaded machine.
func TestReviewRawWriteTimeoutCountsStalls(t *testing.T) {
	server, client := loopbackPair(t)
	_ = client.(*net.TCPConn).SetReadBuffer(16 << 10)
	_ = server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	raw := newRawIO(server, 0)
	raw.wTimeout = time.Second
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 13)
	}
	got := make(chan []byte, 1)
	start := time.Now()
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 32<<10)
		for b.Len() < len(big) {
			time.Sleep(10 * time.Millisecond) // ~3 MB/s at most: seconds for 8 MiB
			n, err := client.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	n, err := raw.write(big)
	took := time.Since(start)
	if err != nil || n != len(big) {
		t.Fatalf("write to a slow but steady reader: %d of %d bytes in %v, %v", n, len(big), took, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the reader got %d bytes, not the %d written in order", len(b), len(big))
	}
	if took < 2*raw.wTimeout {
		t.Fatalf("the write took %v only: the reader was not slow enough to tell", took)
	}
}
