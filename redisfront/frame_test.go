package redisfront

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"

	"github.com/tidwall/redcon"
)

// chunkConn hands out a byte stream in chunks of random sizes.
type chunkConn struct {
	net.Conn
	data []byte
	rng  *rand.Rand
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(3000))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestFramerHandsWholeRequests: a stream of inline and multibulk requests
// (bulk strings holding CRLFs, empty ones, large ones), cut at random
// points as a socket delivers it, reaches redcon's reader as the same
// requests in the same order, and the framer's buffer stays within a few
// times the largest request however long the stream.
func TestFramerHandsWholeRequests(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 7))
		var stream []byte
		var want [][]string
		largest := 0
		for range 2000 {
			var args []string
			var req []byte
			if rng.IntN(5) == 0 {
				args = []string{"SET", "k" + strconv.Itoa(rng.IntN(100)), "v"}
				req = []byte(args[0] + " " + args[1] + " " + args[2] + "\r\n")
			} else {
				n := 1 + rng.IntN(4)
				req = append(req, "*"+strconv.Itoa(n)+"\r\n"...)
				for range n {
					size := rng.IntN(64)
					if rng.IntN(50) == 0 {
						size = rng.IntN(40 << 10)
					}
					a := make([]byte, size)
					for i := range a {
						a[i] = "ab\r\n*$"[rng.IntN(6)]
					}
					args = append(args, string(a))
					req = append(req, "$"+strconv.Itoa(size)+"\r\n"...)
					req = append(req, a...)
					req = append(req, "\r\n"...)
				}
			}
			largest = max(largest, len(req))
			stream = append(stream, req...)
			want = append(want, args)
		}
		lc := &limitConn{max: 1 << 20, Conn: &chunkConn{data: stream, rng: rng}}
		rd := redcon.NewReader(lc)
		biggest := 0
		for i := 0; ; i++ {
			cmd, err := rd.ReadCommand()
			biggest = max(biggest, cap(lc.frame.buf))
			if errors.Is(err, io.EOF) {
				if i != len(want) {
					t.Fatalf("seed %d: EOF after %d of %d requests", seed, i, len(want))
				}
				break
			}
			if err != nil {
				t.Fatalf("seed %d: request %d: %v", seed, i, err)
			}
			if i >= len(want) {
				t.Fatalf("seed %d: more requests than sent", seed)
			}
			if len(cmd.Args) != len(want[i]) {
				t.Fatalf("seed %d: request %d has %d args, want %d", seed, i, len(cmd.Args), len(want[i]))
			}
			for j, a := range cmd.Args {
				if !bytes.Equal(a, []byte(want[i][j])) {
					t.Fatalf("seed %d: request %d arg %d differs", seed, i, j)
				}
			}
		}
		if bound := 4*largest + frameBufMin; biggest > bound {
			t.Errorf("seed %d: framer buffer reached %d bytes for a largest request of %d (stream %d)", seed, biggest, largest, len(stream))
		}
	}
}

// TestRequestEnd: where requests end, where more is needed, and what
// redcon would refuse.
func TestRequestEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		end  int
		okay bool
	}{
		{"PING\r\n", 6, true},
		{"PING", 0, true},
		{"*1\r\n$4\r\nPING\r\n", 14, true},
		{"*1\r\n$4\r\nPING\r\nGET", 14, true},
		{"*1\r\n$4\r\nPING\r", 0, true},
		{"*2\r\n$3\r\nGET\r\n", 0, true},
		{"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 19, true},
		{"*1", 0, true},
		{"*1\r\n$", 0, true},
		{"*x\r\n", 0, false},
		{"*0\r\n", 0, false},
		{"*1\n", 0, false},
		{"*1\r\n:1\r\n", 0, false},
		{"*1\r\n$-3\r\n", 0, false},
		{"*1\r\n$4\r\nPINGxx", 0, false},
		{"*1\r\n$99999999999999999999\r\n", 0, false},
	} {
		end, ok := requestEnd([]byte(tc.in))
		if end != tc.end || ok != tc.okay {
			t.Errorf("requestEnd(%q) = %d, %v; want %d, %v", tc.in, end, ok, tc.end, tc.okay)
		}
	}
}
