package redisfront_test

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/redisfront"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}

// Connections that end every which way (closed in the middle of a
// pipeline whose replies are not read, reset, half-closed, closed in the
// middle of a request, over the request bound) all release their socket:
// the front's descriptors come back to where they were, the open
// connection count to zero, and the front still answers.
func TestReviewConnectionEndsReleaseDescriptors(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	warm := dialRaw(t, f.addr)
	warm.cmd(t, "SET", "k", strings.Repeat("v", 4096))
	if got := warm.line(t); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	warm.c.Close()
	time.Sleep(100 * time.Millisecond)
	before := openFDs(t)

	var big strings.Builder
	for range 2000 {
		big.WriteString("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") // replies of 4 KiB each: 8 MB unread
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			switch i % 5 {
			case 0: // a pipeline whose replies nobody reads
				_, _ = c.Write([]byte(big.String()))
			case 1: // reset with the pipeline in flight
				_, _ = c.Write([]byte(big.String()))
				_ = c.(*net.TCPConn).SetLinger(0)
			case 2: // half-close after a request: its reply still comes
				_, _ = c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
				_ = c.(*net.TCPConn).CloseWrite()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				if string(buf[:n]) != "+PONG\r\n" {
					t.Errorf("half-closed client got %q, want its PONG", buf[:n])
				}
			case 3: // the middle of a request
				_, _ = c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$100\r\nabc"))
			case 4: // over the request bound
				_, _ = c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$200000\r\n" + strings.Repeat("z", 100_000)))
				buf := make([]byte, 128)
				_, _ = c.Read(buf)
			}
		}()
	}
	wg.Wait()
	eventually(t, "descriptors released", func() bool { return openFDs(t) <= before })
	r := dialRaw(t, f.addr)
	r.cmd(t, "PING")
	if got := r.line(t); got != "+PONG" {
		t.Fatalf("PING after the churn: %q", got)
	}
}

// Shutdown while clients are sending: it returns (every connection
// closed, each command in progress finished), clients see their
// connection end, and no descriptor is left behind.
func TestReviewShutdownDuringTraffic(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	before := openFDs(t)
	// A second front on the same node, shut down here (f's is shut down
	// by the cleanup).
	srv, err := redisfront.New(f.n, redisfront.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			k := "s" + itoa(i)
			req := []byte("*3\r\n$3\r\nSET\r\n$2\r\n" + k + "\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$2\r\n" + k + "\r\n")
			buf := make([]byte, 256)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Write(req); err != nil {
					return
				}
				if _, err := c.Read(buf); err != nil {
					return // closed by Shutdown
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown during traffic: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(stop)
		t.Fatal("clients still served after Shutdown returned")
	}
	eventually(t, "descriptors released", func() bool { return openFDs(t) <= before })
}

// Pipelines interleaving reads, writes, MULTI/EXEC and connection commands
// on a few keys answer in order, each command seeing every write before it
// on this connection (read-your-writes), the transaction's replies in one
// array.
func TestReviewPipelineReadYourWrites(t *testing.T) {
	f := startFronts(t, 1, nil)[0]
	r := dialRaw(t, f.addr)
	type step struct {
		args []string
		want string // the reply's first line
	}
	var steps []step
	add := func(want string, args ...string) { steps = append(steps, step{args, want}) }
	for i := range 30 {
		k, v := "rw:"+itoa(i%3), itoa(i)
		add("$-1", "GET", "rw:none")
		add("+OK", "SET", k, v)
		add("$"+itoa(len(v)), "GET", k)
		add(":1", "EXISTS", k)
		switch i % 6 {
		case 0:
			add("+OK", "MULTI")
			add("+QUEUED", "SET", k, "m"+v)
			add("+QUEUED", "GET", k)
			add("+QUEUED", "DEL", k)
			add("*3", "EXEC")
			add("$-1", "GET", k)
			add(":0", "EXISTS", k)
		case 1:
			add(":1", "HSET", "rwh:"+itoa(i), "f", v)
			add("$"+itoa(len(v)), "HGET", "rwh:"+itoa(i), "f")
			add(":1", "DEL", "rwh:"+itoa(i))
			add(":0", "HLEN", "rwh:"+itoa(i))
		case 2:
			add("+PONG", "PING")
			add(":1", "DEL", k)
			add("$-1", "GET", k)
		case 3:
			add("+OK", "MULTI")
			add("+QUEUED", "GET", k)
			add("+OK", "DISCARD")
			add("$"+itoa(len(v)), "GET", k)
		}
	}
	var b strings.Builder
	for _, s := range steps {
		b.WriteString("*" + itoa(len(s.args)) + "\r\n")
		for _, a := range s.args {
			b.WriteString("$" + itoa(len(a)) + "\r\n" + a + "\r\n")
		}
	}
	r.send(t, b.String())
	for i, s := range steps {
		got := r.line(t)
		if got != s.want {
			t.Fatalf("reply %d to %v = %q, want %q", i, s.args, got, s.want)
		}
		switch {
		case strings.HasPrefix(got, "$") && got != "$-1":
			val := r.line(t)
			if s.args[0] == "GET" && len(s.args) == 2 && strings.HasPrefix(s.args[1], "rw:") {
				// The last SET before on this key wrote it.
				var last string
				for _, p := range steps[:i] {
					if len(p.args) == 3 && p.args[0] == "SET" && p.args[1] == s.args[1] {
						last = p.args[2]
					}
				}
				if val != last {
					t.Fatalf("reply %d: GET %s = %q, want %q (the write before it)", i, s.args[1], val, last)
				}
			}
		case got == "*3":
			want := []string{"+OK", "$", "", ":1"}
			for j := 0; j < len(want); j++ {
				l := r.line(t)
				if want[j] == "$" {
					l = l[:1]
				}
				if want[j] != "" && l != want[j] {
					t.Fatalf("reply %d: EXEC element %d = %q, want %q", i, j, l, want[j])
				}
			}
		}
	}
}

// A client is idle when it leaves the front waiting, not while the front
// is busy answering it: one whose pipelined replies took longer than the
// idle timeout to write (it read them slowly) and that sent its next
// command meanwhile gets that command answered, not its connection closed
// as soon as the front is done writing. (Redis counts a reply written as
// interaction too; redcon's SetIdleClose, used before raw I/O, counted
// from each read's start.)
func TestReviewIdleTimeoutSparesSlowReader(t *testing.T) {
	const idle = 300 * time.Millisecond
	f := startFronts(t, 1, func(c *redisfront.Config) { c.IdleTimeout = idle })[0]
	r := dialRaw(t, f.addr)
	// dialRaw's 10 s deadline is too short to read the replies under the
	// race detector on a loaded machine: a client timeout, not the front's.
	_ = r.c.SetDeadline(time.Now().Add(60 * time.Second))
	_ = r.c.(*net.TCPConn).SetReadBuffer(16 << 10)
	args := []string{"HSET", "big"}
	for i := range 7 {
		args = append(args, "f"+itoa(i), strings.Repeat(string(rune('a'+i)), 60<<10))
	}
	r.cmd(t, args...)
	if got := r.line(t); got != ":7" {
		t.Fatalf("HSET: %q", got)
	}
	const gets = 60 // 25 MB of replies: far more than the socket buffers hold
	var b strings.Builder
	for range gets {
		b.WriteString("*2\r\n$7\r\nHGETALL\r\n$3\r\nbig\r\n")
	}
	r.send(t, b.String())
	time.Sleep(3 * idle) // not reading: the front waits to write
	r.cmd(t, "PING")     // the next command, sent while the replies are pending
	line := func() string {
		s, err := r.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("the front closed the connection of a client that was reading its replies: %v", err)
		}
		return strings.TrimSuffix(s, "\r\n")
	}
	for i := range gets {
		if got := line(); got != "*14" {
			t.Fatalf("reply %d: %.20q", i, got)
		}
		for range 14 {
			line() // $len
			line() // the bulk
		}
	}
	if got := line(); got != "+PONG" {
		t.Fatalf("PING sent while the front was writing: %q", got)
	}
}

// A request redcon accepts is one the framer frames: a length written with
// leading zeros past 18 digits (strconv.Atoi, redcon's parser, takes any)
// must not switch the framer to handing bytes through unframed, which
// lifted the bound on one request for the rest of the connection (a
// client could then make the front buffer a request of any size).
func TestReviewZeroPaddedLengthKeepsRequestBound(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	r := dialRaw(t, f.addr)
	r.send(t, "*1\r\n$0000000000000000000004\r\nPING\r\n")
	if got := r.line(t); got != "+PONG" {
		t.Fatalf("PING with a zero-padded length: %q", got)
	}
	big := strings.Repeat("z", 200_000)
	r.send(t, "*2\r\n$4\r\nECHO\r\n$200000\r\n"+big+"\r\n")
	if got := r.line(t); got != "-ERR Protocol error: invalid bulk length" {
		t.Fatalf("a request of 200 kB past a bound of 64 KiB: %.40q", got)
	}
}

// The bound on one request holds for a request that arrives whole in one
// read as for one that arrives in pieces: 100 kB past a bound of 64 KiB is
// refused whatever the socket reads bring.
func TestReviewWholeRequestOverBoundRefused(t *testing.T) {
	f := startFronts(t, 1, func(c *redisfront.Config) { c.MaxRequestBytes = 64 << 10 })[0]
	for _, size := range []int{70_000, 100_000, 130_000} {
		r := dialRaw(t, f.addr)
		r.send(t, "*2\r\n$4\r\nECHO\r\n$"+itoa(size)+"\r\n"+strings.Repeat("z", size)+"\r\n")
		if got := r.line(t); got != "-ERR Protocol error: invalid bulk length" {
			t.Fatalf("a request of %d bytes past a bound of 64 KiB: %.40q", size, got)
		}
	}
}
