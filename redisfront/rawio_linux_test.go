package redisfront

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// loopbackPair returns both ends of a loopback TCP connection.
func loopbackPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestRawIO checks the raw socket path against what net.Conn promises: a
// write larger than the socket buffers arrives whole and in order (the
// writer waits in the poller while the reader is slow), reads see what was
// sent, a read deadline ends a read with a timeout error, and the peer's
// close reads as io.EOF.
func TestRawIO(t *testing.T) {
	server, client := loopbackPair(t)
	// Small socket buffers: the write below waits for room many times,
	// and each wait ends after the reader drained a few KiB. With the
	// kernel's autotuned buffers (MiBs on loopback) one wait lasted until
	// the reader had drained half of them, which under the race detector
	// on a loaded machine took more than the write timeout (a flake seen
	// once in five -race runs).
	_ = client.(*net.TCPConn).SetReadBuffer(64 << 10)
	_ = server.(*net.TCPConn).SetWriteBuffer(64 << 10)
	raw := newRawIO(server, 0)
	if raw == nil {
		t.Fatal("no raw I/O for a TCP connection")
	}

	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	raw.wTimeout = time.Second
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		b.Grow(len(big))
		buf := make([]byte, 256<<10)
		time.Sleep(50 * time.Millisecond) // the writer fills the buffers and waits
		for b.Len() < len(big) {
			n, err := client.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	n, err := raw.write(big)
	if err != nil || n != len(big) {
		t.Fatalf("write: %d bytes, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the reader got %d bytes, not the %d written in order", len(b), len(big))
	}
	// The deadline armed while that write waited must not cut a later one.
	time.Sleep(raw.wTimeout + 100*time.Millisecond)
	if n, err := raw.write([]byte("+OK\r\n")); err != nil || n != 5 {
		t.Fatalf("write after a write that waited: %d bytes, %v", n, err)
	}
	if _, err := io.ReadFull(client, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}

	if _, err := client.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err = raw.read(buf)
	if err != nil || string(buf[:n]) != "*1\r\n$4\r\nPING\r\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	if err := server.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err = raw.read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	client.Close()
	if _, err := raw.read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
	// Writing to a peer that closed: the first write may still be taken,
	// then EPIPE or ECONNRESET as an error (the kernel's SIGPIPE, as for
	// net.Conn's writes, does not end the process).
	var werr error
	for range 100 {
		if _, werr = raw.write([]byte("+PONG\r\n")); werr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("write to a closed peer: %v, want EPIPE or ECONNRESET", werr)
	}
	server.Close()
	if _, err := raw.write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed connection: %v, want net.ErrClosed", err)
	}
}

// TestRawIOTimeouts checks the two deadlines raw I/O arms itself: a client
// that sends something more often than the idle timeout stays, one silent
// for the idle timeout is closed (a timeout error, after the idle timeout
// and not before); a write to a client that stopped reading fails after
// the write timeout.
func TestRawIOTimeouts(t *testing.T) {
	const idle = 300 * time.Millisecond
	server, client := loopbackPair(t)
	raw := newRawIO(server, idle)
	if raw == nil {
		t.Fatal("no raw I/O for a TCP connection")
	}
	go func() {
		for range 8 { // 800 ms in all, more than twice the idle timeout
			time.Sleep(idle / 3)
			if _, err := client.Write([]byte("x")); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 16)
	for got := 0; got < 8; {
		n, err := raw.read(buf)
		if err != nil {
			t.Fatalf("read %d of 8 bytes sent every %v: %v", got, idle/3, err)
		}
		got += n
	}
	start := time.Now()
	_, err := raw.read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read from a silent client: %v, want a timeout", err)
	}
	if d := time.Since(start); d < idle-50*time.Millisecond || d > 5*time.Second {
		t.Errorf("silent client timed out after %v, idle timeout %v", d, idle)
	}

	server2, _ := loopbackPair(t) // its client never reads
	raw2 := newRawIO(server2, 0)
	raw2.wTimeout = 200 * time.Millisecond
	start = time.Now()
	n, err := raw2.write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= 64<<20 {
		t.Fatalf("write to a client that does not read: %d bytes, %v; want a timeout", n, err)
	}
	if d := time.Since(start); d < raw2.wTimeout || d > 10*time.Second {
		t.Errorf("the write gave up after %v, write timeout %v", d, raw2.wTimeout)
	}
}
