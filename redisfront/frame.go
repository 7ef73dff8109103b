package redisfront

import (
	"bytes"
	"math"
	"strconv"
	"unsafe"
)

// framer sits between a client's socket and redcon's reader and hands
// redcon whole requests only. redcon's reader never moves a partial request
// back to the start of its buffer: when one sits at the buffer's end it
// doubles the buffer instead, so a client that streams a pipeline without
// aligning its writes on requests (redis-cli --pipe, any client writing
// faster than the front answers) grew that buffer with the stream, and
// the bound on one request counted the whole backlog. Handed only whole
// requests, redcon's buffer empties after every batch and grows only for a
// single request larger than it; the framer's own buffer holds one partial
// request and what the last socket read brought, and is compacted before
// every read.
//
// The framer finds request ends as redcon parses them (an inline command
// ends at its first '\n'; a multibulk request at the end of its last bulk
// string) and checks nothing else: on input redcon would refuse, it hands
// everything through from there, and redcon answers the protocol error.
type framer struct {
	buf []byte
	// buf[:r] has been handed to redcon, buf[r:s] are whole requests,
	// buf[s:w] the start of the next one.
	r, s, w int
	// ends are the ends of the whole requests in buf[r:s], in order, from
	// ends[eh] on.
	ends []int
	eh   int
	// broken: redcon will refuse the input; hand it all through. passed
	// counts what was handed through since, which the bound on one
	// request also bounds (redcon closes the connection at its parse
	// error; should it not, it would buffer all of it).
	broken bool
	passed int
	// largest is the size of the largest whole request found: one that
	// arrived whole in a read is bounded as one that arrived in pieces.
	largest int
	// need is the size the partial request in buf[s:w] declares it will
	// at least have (requestScan).
	need int
	// scan is how far requestScan got in the partial request, where the
	// next read's scan resumes.
	scan scanState
}

// frameBufMin is the framer's smallest buffer; frameBufKeep the largest it
// keeps once empty (a large request's buffer is dropped after it).
const (
	frameBufMin  = 16 << 10
	frameBufKeep = 64 << 10
)

// take copies whole requests (as many as fit) into p and reports how many
// bytes; 0 when it holds no whole request. When the first request does not
// fit, it hands the part that fits: redcon then grows its buffer to the
// request's size, which the bound on one request limits.
func (f *framer) take(p []byte) int {
	n := f.s - f.r
	if n == 0 {
		return 0
	}
	if n > len(p) {
		n = 0
		for i := f.eh; i < len(f.ends) && f.ends[i]-f.r <= len(p); i++ {
			n = f.ends[i] - f.r
		}
		if n == 0 {
			n = len(p)
		}
	}
	copy(p, f.buf[f.r:f.r+n])
	f.r += n
	for f.eh < len(f.ends) && f.ends[f.eh] <= f.r {
		f.eh++
	}
	if f.eh == len(f.ends) {
		f.ends, f.eh = f.ends[:0], 0
	}
	return n
}

// room compacts the buffer and returns where the next socket read goes,
// growing the buffer when the partial request fills it. Called only when
// no whole request is waiting (r == s).
func (f *framer) room() []byte {
	if f.r == f.w && cap(f.buf) > frameBufKeep {
		f.buf, f.r, f.s, f.w = nil, 0, 0, 0
	}
	if f.r > 0 {
		copy(f.buf, f.buf[f.r:f.w])
		f.w -= f.r
		f.s -= f.r
		f.r = 0
	}
	if f.buf == nil {
		f.buf = make([]byte, frameBufMin)
	}
	if f.w == len(f.buf) {
		nb := make([]byte, 2*len(f.buf))
		copy(nb, f.buf[:f.w])
		f.buf = nb
	}
	return f.buf[f.w:]
}

// filled records n bytes read into room's slice and finds the requests
// they complete.
func (f *framer) filled(n int) {
	f.w += n
	if f.broken {
		f.s = f.w
		f.passed += n
		return
	}
	for f.s < f.w {
		if f.scan.at == 0 {
			if k := emptyMultibulk(f.buf[f.s:f.w], &f.scan); k > 0 {
				// Redis reads "*0\r\n" (or a negative count) as no
				// command and goes on; redcon would close the
				// connection on it.
				copy(f.buf[f.s:], f.buf[f.s+k:f.w])
				f.w -= k
				continue
			}
		}
		end, need, ok := requestScan(f.buf[f.s:f.w], &f.scan)
		if !ok {
			f.broken = true
			f.need = 0
			f.scan = scanState{}
			f.passed = f.w - f.s
			f.s = f.w
			return
		}
		if end == 0 {
			f.need = need
			return
		}
		f.need = 0
		f.scan = scanState{}
		f.s += end
		f.ends = append(f.ends, f.s)
		f.largest = max(f.largest, end)
	}
}

// partial is the size of the request not yet whole; once broken, of
// everything handed through since.
func (f *framer) partial() int {
	if f.broken {
		return f.passed
	}
	return f.w - f.s
}

// over reports whether a request, whole, partial or only declared, is
// larger than max.
func (f *framer) over(max int) bool {
	return f.partial() > max || f.largest > max || f.need > max
}

// requestEnd returns the length of the first request in b, 0 if b holds
// only part of it, and ok false where redcon would refuse the input.
func requestEnd(b []byte) (int, bool) {
	end, _, ok := requestScan(b, &scanState{})
	return end, ok
}

// scanState is where requestScan stopped in a request it found
// incomplete. The next scan of the same request, with more bytes after
// it, resumes there: rescanning from the request's start on every socket
// read cost time quadratic in the request's size, so a client that sent
// a 4 MiB request in 1 KiB pieces, before authenticating, kept a core
// busy for 14 s.
type scanState struct {
	// at is how much of the request is scanned: an inline line's bytes
	// without its end, or a multibulk's header and its whole arguments
	// (0: nothing yet, or the header is incomplete).
	at int
	// left is how many arguments of a multibulk are still to come once
	// at is past its header.
	left int
	// nl is how far the unfinished number line ("*N" or "$N") was
	// searched for its end: redcon takes any number of leading zeros, so
	// the line may be long, and is searched once, not again at every
	// read.
	nl int
	// bulk, when not 0, is where the data of the argument at at starts
	// (its "$N" line read), size its length.
	bulk, size int
}

// emptyMultibulk returns the length of the multibulk header at b's start
// when it declares no arguments ("*0\r\n", "*-1\r\n"), which Redis skips
// without a reply; 0 for anything else, an incomplete header included.
func emptyMultibulk(b []byte, st *scanState) int {
	if len(b) == 0 || b[0] != '*' {
		return 0
	}
	i, n, ok := lineInt(b, 1, st)
	if !ok || i == 0 || n > 0 {
		return 0
	}
	return i
}

// minBulk is the smallest bulk string ("$0\r\n\r\n").
const minBulk = 6

// requestScan is requestEnd that also reports, for a request b holds only
// part of, the size it declares it will at least have (its bulk lengths
// and argument count so far): a request declared larger than the bound is
// refused at its header, as Redis refuses a bulk length over its
// proto-max-bulk-len, rather than waited for. Declared sizes saturate at
// math.MaxInt: "$9223372036854775807" must not wrap around.
//
// st carries the scan across calls for one request: zero for a new one,
// left as the call left it for the same request with more bytes.
func requestScan(b []byte, st *scanState) (end, need int, ok bool) {
	if b[0] != '*' {
		i := bytes.IndexByte(b[st.at:], '\n')
		if i < 0 {
			st.at = len(b)
			return 0, 0, true
		}
		return st.at + i + 1, 0, true
	}
	i, n := st.at, st.left
	if i == 0 {
		i, n, ok = lineInt(b, 1, st)
		switch {
		case !ok:
			return 0, 0, false
		case i == 0:
			return 0, 0, true
		case n <= 0:
			return 0, 0, false
		}
	}
	for k := range n {
		st.at, st.left = i, n-k
		if i >= len(b) {
			return 0, atLeast(i, n-k), true
		}
		if b[i] != '$' {
			return 0, 0, false
		}
		j, size := st.bulk, st.size
		if j == 0 {
			var ok bool
			j, size, ok = lineInt(b, i+1, st)
			if !ok {
				return 0, 0, false
			}
			if j == 0 {
				return 0, atLeast(i, n-k), true
			}
			if size < 0 {
				return 0, 0, false
			}
			st.bulk, st.size = j, size
		}
		if size > len(b)-j-2 {
			if size > math.MaxInt-j-2 {
				return 0, math.MaxInt, true
			}
			return 0, atLeast(j+size+2, n-k-1), true
		}
		if b[j+size] != '\r' || b[j+size+1] != '\n' {
			return 0, 0, false
		}
		i = j + size + 2
		st.bulk, st.size = 0, 0
	}
	return i, 0, true
}

// atLeast is at plus the smallest size of left more bulk strings,
// saturating at math.MaxInt.
func atLeast(at, left int) int {
	if left > (math.MaxInt-at)/minBulk {
		return math.MaxInt
	}
	return at + left*minBulk
}

// lineInt parses the number from b[from:] to the next CRLF and returns the
// index after the CRLF; next 0 when the line is incomplete, ok false when
// it is not a CRLF-terminated number. The search for the line's end starts
// where st says the last call's stopped.
func lineInt(b []byte, from int, st *scanState) (next, v int, ok bool) {
	start := max(from, st.nl)
	nl := bytes.IndexByte(b[start:], '\n')
	if nl < 0 {
		st.nl = len(b)
		return 0, 0, true
	}
	st.nl = 0
	end := start + nl
	if end == from || b[end-1] != '\r' {
		return 0, 0, false
	}
	v, ok = parseDecimal(b[from : end-1])
	if !ok {
		return 0, 0, false
	}
	return end + 1, v, true
}

// parseDecimal parses exactly what strconv.Atoi (redcon's parser) accepts,
// any number of leading zeros included, without a string conversion per
// request: a number the framer refused and redcon took would leave the
// connection unframed (broken) while redcon goes on parsing it.
func parseDecimal(d []byte) (int, bool) {
	v, err := strconv.Atoi(unsafe.String(unsafe.SliceData(d), len(d)))
	return v, err == nil
}
