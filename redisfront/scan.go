package redisfront

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// mapNotFound turns a node's ErrNotFound into errRetry: the session ended
// between a lookup and a write.
func mapNotFound(err error) error {
	if errors.Is(err, node.ErrNotFound) {
		return errRetry
	}
	return err
}

// storedKind returns the key name and type of a stored session, or
// kindNone when it is not a visible key of this front.
func storedKind(sess *crdt.Session, now time.Time) ([]byte, kind) {
	if !sess.Visible(now) {
		return nil, kindNone
	}
	key, ok := sess.Get(fieldKey)
	if !ok {
		return nil, kindNone // a session of the HTTP API or the middleware
	}
	if _, ok := sess.Get(fieldString); ok {
		return []byte(key), kindString
	}
	for k, f := range sess.Fields.All() {
		if _, user := decodeField(k); user && !f.Removed {
			return []byte(key), kindHash
		}
	}
	return nil, kindNone
}

// scanBuckets calls fn with the keys of buckets [from, to).
func (s *Server) scanBuckets(from, to int, fn func(key []byte, k kind)) error {
	buckets := make([]int, 0, to-from)
	for b := from; b < to; b++ {
		buckets = append(buckets, b)
	}
	now := s.n.Now()
	return s.n.Store().Buckets(s.ctx, buckets, func(sess *crdt.Session) error {
		if key, k := storedKind(sess, now); k != kindNone {
			fn(key, k)
		}
		return nil
	})
}

// cmdScan walks the store's buckets: the cursor is the next bucket to
// visit, so a key present for the whole scan is returned exactly once (keys
// do not move between buckets).
func cmdScan(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.fail(conn, "ERR invalid cursor")
		return
	}
	count := 10
	var pattern []byte
	typ := ""
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.fail(conn, errSyntax)
			return
		}
		switch strings.ToLower(string(args[i])) {
		case "match":
			pattern = args[i+1]
		case "count":
			n, ok := parseInt(args[i+1])
			if !ok {
				c.fail(conn, errNotInt)
				return
			}
			if n < 1 {
				c.fail(conn, errSyntax)
				return
			}
			count = int(min(n, 1<<20))
		case "type":
			typ = strings.ToLower(string(args[i+1]))
		default:
			c.fail(conn, errSyntax)
			return
		}
	}
	var keys [][]byte
	b := int(min(cursor, persist.Buckets))
	// Visit at least count buckets per call and stop once count keys are
	// found, so that an empty store is scanned in few calls.
	for b < persist.Buckets && len(keys) < count {
		to := min(b+max(count, 64), persist.Buckets)
		err := s.scanBuckets(b, to, func(key []byte, k kind) {
			if (typ == "" || typ == k.String()) && (pattern == nil || globMatch(pattern, key)) {
				keys = append(keys, key)
			}
		})
		if err != nil {
			s.failErr(c, conn, err)
			return
		}
		b = to
	}
	next := b
	if next >= persist.Buckets {
		next = 0
	}
	conn.WriteArray(2)
	conn.WriteBulkString(strconv.Itoa(next))
	conn.WriteArray(len(keys))
	for _, k := range keys {
		conn.WriteBulk(k)
	}
}

func cmdKeys(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var keys [][]byte
	err := s.scanBuckets(0, persist.Buckets, func(key []byte, _ kind) {
		if globMatch(args[1], key) {
			keys = append(keys, key)
		}
	})
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteArray(len(keys))
	for _, k := range keys {
		conn.WriteBulk(k)
	}
}

func cmdDBSize(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	n := 0
	if err := s.scanBuckets(0, persist.Buckets, func([]byte, kind) { n++ }); err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteInt(n)
}

// globMatch matches s against a Redis glob pattern: * any run of bytes, ?
// any byte, [abc], [^abc] and [a-z] classes, and \ quoting the next byte.
// It backtracks only to the last *, so its cost is bounded by
// len(pattern) × len(s).
func globMatch(pattern, s []byte) bool {
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		if p < len(pattern) {
			switch pattern[p] {
			case '*':
				starP, starI = p, i
				p++
				continue
			case '?':
				p++
				i++
				continue
			case '[':
				if end, ok := matchClass(pattern, p, s[i]); ok {
					p = end
					i++
					continue
				}
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == s[i] {
					p += 2
					i++
					continue
				}
			default:
				if pattern[p] == s[i] {
					p++
					i++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches b against the class starting at pattern[p] == '['; it
// returns the index after the class and whether b is in it. An unclosed
// class runs to the end of the pattern, as in Redis.
func matchClass(pattern []byte, p int, b byte) (int, bool) {
	p++
	negate := p < len(pattern) && pattern[p] == '^'
	if negate {
		p++
	}
	match := false
	for p < len(pattern) && pattern[p] != ']' {
		switch {
		case pattern[p] == '\\' && p+1 < len(pattern):
			p++
			if pattern[p] == b {
				match = true
			}
			p++
		case p+2 < len(pattern) && pattern[p+1] == '-' && pattern[p+2] != ']':
			lo, hi := pattern[p], pattern[p+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo <= b && b <= hi {
				match = true
			}
			p += 3
		default:
			if pattern[p] == b {
				match = true
			}
			p++
		}
	}
	if p < len(pattern) {
		p++ // the ']'
	}
	return p, match != negate
}
