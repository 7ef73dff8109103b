package redisfront

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
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
		// redcon takes any number of leading zeros: a long number line
		// is waited for, and framed.
		{"*1\r\n$" + strings.Repeat("0", 1000), 0, true},
		{"*1\r\n$" + strings.Repeat("0", 1000) + "4\r\nPING\r\n", 1000 + 14, true},
		{"*" + strings.Repeat("0", 1000) + "1\r\n$4\r\nPING\r\n", 1000 + 14, true},
	} {
		end, ok := requestEnd([]byte(tc.in))
		if end != tc.end || ok != tc.okay {
			t.Errorf("requestEnd(%q) = %d, %v; want %d, %v", tc.in, end, ok, tc.end, tc.okay)
		}
	}
}

// TestFramerScanResumes: a request that arrives in pieces is scanned once,
// not again from its start at every read. After each 1 KiB read of a
// multibulk request of one-byte arguments, the scan has reached the last
// whole argument; of an inline line or a long (zero-padded) number line,
// the last byte; of a large bulk, it waits for the data without a look. Rescanning from the
// start (the scan state dropped) cost time quadratic in the request's
// size: 14 s of CPU for 4 MiB in 1 KiB pieces, before AUTH.
func TestFramerScanResumes(t *testing.T) {
	multibulk := frameArgsRequest(1 << 20)
	inline := append(bytes.Repeat([]byte("a"), 256<<10), "\r\n"...)
	// Leading zeros, which redcon takes: the number lines are long.
	padded := []byte("*" + strings.Repeat("0", 256<<10) + "2\r\n$4\r\nECHO\r\n$" + strings.Repeat("0", 256<<10) + "1\r\na\r\n")
	bulk := []byte("*2\r\n$4\r\nECHO\r\n$1048576\r\n" + strings.Repeat("b", 1<<20) + "\r\n")
	for _, tc := range []struct {
		name  string
		req   []byte
		slack int // how far short of the bytes in hand the scan may stop
	}{
		{"multibulk", multibulk, len("$1\r\na\r\n")},
		{"inline", inline, 0},
		{"padded numbers", padded, 0},
		{"large bulk", bulk, 0},
	} {
		var f framer
		for off := 0; off < len(tc.req); {
			n := copy(f.room(), tc.req[off:min(off+1024, len(tc.req))])
			off += n
			f.filled(n)
			if f.broken {
				t.Fatalf("%s: refused at %d", tc.name, off)
			}
			if off == len(tc.req) {
				break
			}
			if got, held := scanned(f.scan, f.w-f.s), f.w-f.s; got < held-tc.slack {
				t.Fatalf("%s: after %d bytes the scan stopped at %d of %d in hand", tc.name, off, got, held)
			}
		}
		if f.s != len(tc.req) || len(f.ends) != 1 || f.scan != (scanState{}) {
			t.Fatalf("%s: request of %d bytes: s %d, ends %v, scan %+v", tc.name, len(tc.req), f.s, f.ends, f.scan)
		}
	}
}

// scanned is how much of the held bytes of a request st has looked at:
// past its scanned arguments, its searched number line, or, waiting for a
// bulk's data, all of it (the data needs no scan until it is whole).
func scanned(st scanState, held int) int {
	if st.bulk > 0 {
		return held
	}
	return max(st.at, st.nl)
}

// frameArgsRequest is a multibulk request of about size bytes of one-byte
// arguments, the most arguments per byte.
func frameArgsRequest(size int) []byte {
	n := size / len("$1\r\na\r\n")
	b := []byte("*" + strconv.Itoa(n) + "\r\n")
	for range n {
		b = append(b, "$1\r\na\r\n"...)
	}
	return b
}

// BenchmarkFramerPieces frames requests just under the default bound on
// one request (one-byte arguments; one zero-padded number line), as one
// read and in 1 KiB reads: the two cost the same per byte when each read's
// scan resumes where the last one stopped.
//
//	go test ./redisfront -run '^$' -bench FramerPieces
func BenchmarkFramerPieces(b *testing.B) {
	args := frameArgsRequest(DefaultMaxRequestBytes - 64)
	// One number line of 4 MiB of leading zeros, which redcon takes.
	padded := []byte("*1\r\n$" + strings.Repeat("0", DefaultMaxRequestBytes-64) + "4\r\nPING\r\n")
	for _, in := range []struct {
		name string
		req  []byte
	}{{"args", args}, {"padded", padded}} {
		for _, piece := range []int{len(in.req), 1024} {
			req := in.req
			b.Run(in.name+"/read="+strconv.Itoa(piece), func(b *testing.B) {
				b.SetBytes(int64(len(req)))
				for b.Loop() {
					var f framer
					for off := 0; off < len(req); {
						n := copy(f.room(), req[off:min(off+piece, len(req))])
						off += n
						f.filled(n)
					}
					if f.s != len(req) {
						b.Fatalf("framed %d of %d bytes", f.s, len(req))
					}
				}
			})
		}
	}
}
