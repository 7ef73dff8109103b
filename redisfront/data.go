package redisfront

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"
)

// retry runs fn again when a concurrent command changed the key between
// its lookup and its write.
func retry(fn func() error) error {
	var err error
	for range 4 {
		if err = fn(); !errors.Is(err, errRetry) {
			return err
		}
	}
	return err
}

// maxExpireSeconds keeps expiry arithmetic in milliseconds from
// overflowing, as Redis does.
const maxExpireMillis = math.MaxInt64 / 4

// expiry is an EX/PX/EXAT/PXAT option: a relative or absolute time in
// seconds or milliseconds.
type expiry struct {
	set      bool
	abs, sec bool
	v        int64
}

// sameKind reports whether x and y are the same option: Redis takes the
// last of repeated EX (or PX, EXAT, PXAT) options and refuses two kinds.
func (x expiry) sameKind(y expiry) bool { return x.abs == y.abs && x.sec == y.sec }

// parseExpiryOpt recognizes an expiry option name.
func parseExpiryOpt(opt string) (expiry, bool) {
	switch opt {
	case "ex":
		return expiry{set: true, sec: true}, true
	case "px":
		return expiry{set: true}, true
	case "exat":
		return expiry{set: true, abs: true, sec: true}, true
	case "pxat":
		return expiry{set: true, abs: true}, true
	}
	return expiry{}, false
}

// expiryNow is the node's time in whole milliseconds, the unit Redis
// keeps expiry in: computed from it, a TTL set and read back in the same
// millisecond is the one set, and EXPIRE GT or LT giving a key the
// deadline it already has changes nothing, as in Redis.
func (s *Server) expiryNow() time.Time {
	return time.UnixMilli(s.n.Now().UnixMilli())
}

// ttl returns the time left until the expiry, from now.
func (x expiry) ttl(now time.Time) time.Duration {
	ms := x.v
	if x.sec {
		ms *= 1000
	}
	if x.abs {
		return time.UnixMilli(ms).Sub(now)
	}
	return time.Duration(ms) * time.Millisecond
}

// parseValue reads the option's number; set/getex refuse non-positive ones.
func (x *expiry) parseValue(b []byte) (ok, positive bool) {
	v, ok := parseInt(b)
	if !ok {
		return false, false
	}
	lim := int64(maxExpireMillis)
	if x.sec {
		lim /= 1000
	}
	if v <= 0 || v > lim {
		return true, false
	}
	x.v = v
	return true, true
}

func cmdGet(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var e entry
	if err := s.lookupInto(&e, args[1]); err != nil {
		s.failErr(c, conn, err)
		return
	}
	// The string first: a GET of a string key reads one field.
	if v, ok := e.str(); ok {
		conn.WriteBulkString(v)
		return
	}
	if e.kind() == kindNone {
		c.null(conn)
		return
	}
	c.fail(conn, errWrongType)
}

// setOpts are SET's options.
type setOpts struct {
	nx, xx, get, keepTTL bool
	exp                  expiry
}

func cmdSet(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var o setOpts
	for i := 3; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		if x, ok := parseExpiryOpt(opt); ok && i+1 < len(args) && (!o.exp.set || o.exp.sameKind(x)) && !o.keepTTL {
			ok, pos := x.parseValue(args[i+1])
			if !ok {
				c.fail(conn, errNotInt)
				return
			}
			if !pos {
				c.fail(conn, "ERR invalid expire time in 'set' command")
				return
			}
			o.exp = x
			i++
			continue
		}
		switch {
		case opt == "nx" && !o.xx:
			o.nx = true
		case opt == "xx" && !o.nx:
			o.xx = true
		case opt == "get":
			o.get = true
		case opt == "keepttl" && !o.exp.set:
			o.keepTTL = true
		default:
			c.fail(conn, errSyntax)
			return
		}
	}
	s.set(c, conn, args[1], args[2], o)
}

// set carries out SET and its variants; replies as SET does.
func (s *Server) set(c *client, conn redcon.Conn, key, value []byte, o setOpts) {
	var old string
	var hadOld, applied bool
	err := retry(func() error {
		e, err := s.lookup(key)
		if err != nil {
			return err
		}
		k := e.kind()
		if o.get && k == kindHash {
			return errWrongTypeSentinel
		}
		old, hadOld = e.str()
		if (o.nx && k != kindNone) || (o.xx && k == kindNone) {
			applied = false
			return nil
		}
		applied = true
		now := s.expiryNow()
		w := write{set: map[string][]byte{fieldString: value}, replace: true, touch: !o.keepTTL}
		if o.exp.set {
			if w.idle = o.exp.ttl(now); w.idle <= 0 {
				if k != kindNone {
					return s.destroy(e)
				}
				return nil
			}
		}
		return s.put(e, w)
	})
	switch {
	case err != nil:
		s.failErr(c, conn, err)
	case o.get && hadOld:
		conn.WriteBulkString(old)
	case o.get, !applied:
		c.null(conn)
	default:
		conn.WriteString("OK")
	}
}

// errWrongTypeSentinel carries a WRONGTYPE answer out of a retry loop;
// failErr writes it.
var errWrongTypeSentinel = errors.New("wrongtype")

func cmdSetex(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	x := expiry{set: true, sec: name == "setex"}
	ok, pos := x.parseValue(args[2])
	if !ok {
		c.fail(conn, errNotInt)
		return
	}
	if !pos {
		c.fail(conn, "ERR invalid expire time in '"+name+"' command")
		return
	}
	s.set(c, conn, args[1], args[3], setOpts{exp: x})
}

func cmdSetnx(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var applied bool
	err := retry(func() error {
		e, err := s.lookup(args[1])
		if err != nil {
			return err
		}
		if applied = e.kind() == kindNone; !applied {
			return nil
		}
		return s.put(e, write{set: map[string][]byte{fieldString: args[2]}, replace: true, touch: true})
	})
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteInt(boolInt(applied))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmdGetex(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var x expiry
	persist := false
	for i := 2; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		if y, ok := parseExpiryOpt(opt); ok && i+1 < len(args) && (!x.set || x.sameKind(y)) && !persist {
			ok, pos := y.parseValue(args[i+1])
			if !ok {
				c.fail(conn, errNotInt)
				return
			}
			if !pos {
				c.fail(conn, "ERR invalid expire time in 'getex' command")
				return
			}
			x = y
			i++
			continue
		}
		if opt == "persist" && !x.set {
			persist = true
			continue
		}
		c.fail(conn, errSyntax)
		return
	}
	s.getThen(c, conn, args[1], func(e *entry) error {
		switch {
		case persist:
			return s.put(e, write{idle: s.cfg.Lifetime, touch: true})
		case x.set:
			ttl := x.ttl(s.expiryNow())
			if ttl <= 0 {
				return s.destroy(e)
			}
			return s.expire(e, ttl)
		}
		return nil
	})
}

// expire sets a live key's expiry ttl from now, shorter or longer than
// before: the idle timeout becomes ttl (a last-writer-wins register on
// every peer) and the access starts the window again. The absolute
// deadline still bounds it.
func (s *Server) expire(e *entry, ttl time.Duration) error {
	return s.put(e, write{idle: ttl, touch: true})
}

func cmdGetdel(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	s.getThen(c, conn, args[1], s.destroy)
}

// getThen answers GET key after running then on the string key it read
// (again when the key changed concurrently); then does not run when there
// is no key, and a hash answers WRONGTYPE.
func (s *Server) getThen(c *client, conn redcon.Conn, key []byte, then func(*entry) error) {
	var val string
	var found bool
	err := retry(func() error {
		e, err := s.lookup(key)
		if err != nil {
			return err
		}
		switch e.kind() {
		case kindNone:
			found = false
			return nil
		case kindHash:
			return errWrongTypeSentinel
		}
		val, found = e.str()
		return then(e)
	})
	switch {
	case err != nil:
		s.failErr(c, conn, err)
	case !found:
		c.null(conn)
	default:
		conn.WriteBulkString(val)
	}
}

func cmdMget(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	type value struct {
		v  string
		ok bool
	}
	vals := make([]value, len(args)-1)
	for i, k := range args[1:] {
		e, err := s.lookup(k)
		if err != nil {
			s.failErr(c, conn, err)
			return
		}
		vals[i].v, vals[i].ok = e.str()
	}
	conn.WriteArray(len(vals))
	for _, v := range vals {
		if v.ok {
			conn.WriteBulkString(v.v)
		} else {
			c.null(conn)
		}
	}
}

func cmdDel(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	n := 0
	for _, k := range args[1:] {
		e, err := s.lookup(k)
		if err != nil {
			s.failErr(c, conn, err)
			return
		}
		if e.exhausted {
			continue // every generation has ended already
		}
		if !e.live {
			// Not here (yet): a session another peer created, or is about
			// to create, under this generation must not survive the DEL
			// when it arrives, so the generation is ended here too.
			if err := s.n.Retire(s.ctx, e.k.Token(), s.n.Now().Add(s.cfg.Lifetime+time.Minute)); err != nil {
				s.failErr(c, conn, err)
				return
			}
			continue
		}
		if e.kind() != kindNone {
			n++
		}
		if err := s.destroy(e); err != nil {
			s.failErr(c, conn, err)
			return
		}
	}
	conn.WriteInt(n)
}

func cmdExists(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	n := 0
	for _, k := range args[1:] {
		e, err := s.lookup(k)
		if err != nil {
			s.failErr(c, conn, err)
			return
		}
		if e.kind() != kindNone {
			n++
		}
	}
	conn.WriteInt(n)
}

func cmdExpire(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	x := expiry{sec: name == "expire" || name == "expireat", abs: strings.HasSuffix(name, "at")}
	v, ok := parseInt(args[2])
	if !ok {
		c.fail(conn, errNotInt)
		return
	}
	lim := int64(maxExpireMillis)
	if x.sec {
		lim /= 1000
	}
	if v > lim || v < -lim {
		c.fail(conn, "ERR invalid expire time in '"+name+"' command")
		return
	}
	x.v = v
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch strings.ToLower(string(a)) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		default:
			c.fail(conn, "ERR Unsupported option "+string(a))
			return
		}
	}
	if nx && (xx || gt || lt) {
		c.fail(conn, "ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		c.fail(conn, "ERR GT and LT options at the same time are not compatible")
		return
	}
	var applied bool
	err := retry(func() error {
		applied = false
		e, err := s.lookup(args[1])
		if err != nil {
			return err
		}
		// Every session has an expiry (its absolute deadline at least), so
		// NX never applies and XX always does.
		if e.kind() == kindNone || nx {
			return nil
		}
		now := s.expiryNow()
		ttl, cur := x.ttl(now), e.ttl(now)
		if (gt && ttl <= cur) || (lt && ttl >= cur) {
			return nil
		}
		applied = true
		if ttl <= 0 {
			return s.destroy(e)
		}
		return s.expire(e, ttl)
	})
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteInt(boolInt(applied))
}

// cmdPersist raises the idle timeout to the absolute lifetime: the key
// then lives until its session's deadline, the longest the mesh allows.
func cmdPersist(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var applied bool
	err := retry(func() error {
		e, err := s.lookup(args[1])
		if err != nil {
			return err
		}
		if applied = e.kind() != kindNone; !applied {
			return nil
		}
		return s.put(e, write{idle: s.cfg.Lifetime, touch: true})
	})
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteInt(boolInt(applied))
}

// cmdTTL answers TTL and PTTL (the time left, rounded to the second or in
// milliseconds) and EXPIRETIME and PEXPIRETIME (the deadline as a Unix
// time, in seconds rounded as TTL's or in milliseconds, as Redis 7 gives
// them); -2 for a missing key. Every
// session expires, so the -1 of a key without expiry never comes.
func cmdTTL(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, err := s.lookup(args[1])
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	if e.kind() == kindNone {
		conn.WriteInt(-2)
		return
	}
	now := s.expiryNow()
	ttl := e.ttl(now)
	if ttl <= 0 {
		conn.WriteInt(-2)
		return
	}
	ms := ttl.Milliseconds()
	switch name := args[0]; {
	case strings.EqualFold(string(name), "ttl"):
		conn.WriteInt64((ms + 500) / 1000)
	case strings.EqualFold(string(name), "pttl"):
		conn.WriteInt64(ms)
	case strings.EqualFold(string(name), "expiretime"):
		conn.WriteInt64((now.UnixMilli() + ms + 500) / 1000) // rounded, as TTL
	default: // pexpiretime
		conn.WriteInt64(now.UnixMilli() + ms)
	}
}

func cmdType(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, err := s.lookup(args[1])
	if err != nil {
		s.failErr(c, conn, err)
		return
	}
	conn.WriteString(e.kind().String())
}

// cmdRename is a renew: the destination gets a new session (a new id)
// holding the source's fields, idle timeout and deadline, and the source's
// session is destroyed. A live destination is destroyed first, as Redis
// overwrites it.
func cmdRename(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	nx := strings.EqualFold(string(args[0]), "renamenx")
	var applied bool
	err := retry(func() error {
		src, err := s.lookup(args[1])
		if err != nil {
			return err
		}
		if src.kind() == kindNone {
			return errNoSuchKeySentinel
		}
		if string(args[1]) == string(args[2]) {
			applied = !nx
			return nil
		}
		dst, err := s.lookup(args[2])
		if err != nil {
			return err
		}
		if dst.kind() != kindNone && nx {
			applied = false
			return nil
		}
		if dst.live {
			if err := s.destroy(dst); err != nil {
				return err
			}
			if dst, err = s.lookup(args[2]); err != nil {
				return err
			}
			if dst.live {
				return errRetry
			}
		}
		fields := src.sess.Fields()
		delete(fields, fieldKey)
		now := s.n.Now()
		lifetime := src.sess.Deadline().Sub(now)
		if lifetime <= 0 {
			return errRetry
		}
		if err := s.create(dst, write{set: fields, idle: src.sess.IdleTimeout(), lifetime: lifetime}); err != nil {
			return err
		}
		applied = true
		return s.destroy(src)
	})
	switch {
	case errors.Is(err, errNoSuchKeySentinel):
		c.fail(conn, errNoSuchKey)
	case err != nil:
		s.failErr(c, conn, err)
	case nx:
		conn.WriteInt(boolInt(applied))
	default:
		conn.WriteString("OK")
	}
}

var errNoSuchKeySentinel = errors.New("no such key")

// lookupHash looks key up for a hash command: errWrongTypeSentinel when
// it holds a string.
func (s *Server) lookupHash(key []byte) (*entry, error) {
	e, err := s.lookup(key)
	if err != nil {
		return nil, err
	}
	if e.kind() == kindString {
		return nil, errWrongTypeSentinel
	}
	return e, nil
}

// hashEntry looks key up for a hash command; ok is false when the reply
// (WRONGTYPE or an error) was written.
func (s *Server) hashEntry(c *client, conn redcon.Conn, key []byte) (*entry, bool) {
	e, err := s.lookupHash(key)
	if err != nil {
		s.failErr(c, conn, err)
		return nil, false
	}
	return e, true
}

func cmdHset(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	if len(args)%2 != 0 {
		c.fail(conn, arityError(strings.ToLower(string(args[0]))))
		return
	}
	set := make(map[string][]byte, (len(args)-2)/2)
	for i := 2; i < len(args); i += 2 {
		set[encodeField(args[i])] = args[i+1]
	}
	added := 0
	err := retry(func() error {
		e, err := s.lookupHash(args[1])
		if err != nil {
			return err
		}
		added = 0
		for f := range set {
			if _, ok := e.sess.GetString(f); !ok || !e.live {
				added++
			}
		}
		return s.put(e, write{set: set, touch: true})
	})
	switch {
	case err != nil:
		s.failErr(c, conn, err)
	case strings.EqualFold(string(args[0]), "hmset"):
		conn.WriteString("OK")
	default:
		conn.WriteInt(added)
	}
}

func cmdHsetnx(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	f := encodeField(args[2])
	var applied bool
	err := retry(func() error {
		e, err := s.lookupHash(args[1])
		if err != nil {
			return err
		}
		if _, ok := e.sess.GetString(f); ok && e.live {
			applied = false
			return nil
		}
		applied = true
		return s.put(e, write{set: map[string][]byte{f: args[3]}, touch: true})
	})
	switch {
	case err != nil:
		s.failErr(c, conn, err)
	default:
		conn.WriteInt(boolInt(applied))
	}
}

func cmdHget(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, ok := s.hashEntry(c, conn, args[1])
	if !ok {
		return
	}
	v, found := e.sess.GetString(encodeField(args[2]))
	if !found || !e.live {
		c.null(conn)
		return
	}
	conn.WriteBulkString(v)
}

func cmdHmget(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, ok := s.hashEntry(c, conn, args[1])
	if !ok {
		return
	}
	conn.WriteArray(len(args) - 2)
	for _, f := range args[2:] {
		if v, found := e.sess.GetString(encodeField(f)); found && e.live {
			conn.WriteBulkString(v)
		} else {
			c.null(conn)
		}
	}
}

func cmdHgetall(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var e entry
	if err := s.lookupInto(&e, args[1]); err != nil {
		s.failErr(c, conn, err)
		return
	}
	// One pass over the fields, into an array on the stack (sessions
	// have a handful of fields), then the reply: the values go from the
	// session snapshot to the reply without a copy.
	var buf [16]kv
	ps, isString := e.hashPairs(buf[:0])
	if isString {
		c.fail(conn, errWrongType)
		return
	}
	c.mapLen(conn, len(ps))
	for _, p := range ps {
		conn.WriteBulkString(p.field)
		conn.WriteBulkString(p.value)
	}
}

func cmdHkeys(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	s.hashColumn(c, conn, args[1], func(p kv) string { return p.field })
}

func cmdHvals(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	s.hashColumn(c, conn, args[1], func(p kv) string { return p.value })
}

// hashColumn answers with of(p) for every field p of the hash at key.
func (s *Server) hashColumn(c *client, conn redcon.Conn, key []byte, of func(kv) string) {
	e, ok := s.hashEntry(c, conn, key)
	if !ok {
		return
	}
	ps := e.pairs()
	conn.WriteArray(len(ps))
	for _, p := range ps {
		conn.WriteBulkString(of(p))
	}
}

func cmdHlen(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, ok := s.hashEntry(c, conn, args[1])
	if !ok {
		return
	}
	n := 0
	if e.live {
		n = e.sess.Len() - 1 // less fieldKey
	}
	conn.WriteInt(max(n, 0))
}

func cmdHexists(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	e, ok := s.hashEntry(c, conn, args[1])
	if !ok {
		return
	}
	_, found := e.sess.GetString(encodeField(args[2]))
	conn.WriteInt(boolInt(found && e.live))
}

// cmdHdel removes fields; a hash left without fields reads as no key, as
// in Redis, and its session is destroyed.
func cmdHdel(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	removed := 0
	err := retry(func() error {
		e, err := s.lookupHash(args[1])
		if err != nil {
			return err
		}
		if e.kind() == kindNone {
			removed = 0
			return nil
		}
		h := e.hash()
		var remove []string
		for _, f := range args[2:] {
			if _, ok := h[string(f)]; ok {
				remove = append(remove, encodeField(f))
				delete(h, string(f))
			}
		}
		removed = len(remove)
		if removed == 0 {
			return nil
		}
		if len(h) == 0 {
			return s.destroy(e)
		}
		return s.put(e, write{remove: remove, touch: true})
	})
	switch {
	case err != nil:
		s.failErr(c, conn, err)
	default:
		conn.WriteInt(removed)
	}
}

func cmdHincrby(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	incr, ok := parseInt(args[3])
	if !ok {
		c.fail(conn, errNotInt)
		return
	}
	f := encodeField(args[2])
	var result int64
	err := retry(func() error {
		e, err := s.lookupHash(args[1])
		if err != nil {
			return err
		}
		var cur int64
		if v, found := e.sess.Get(f); found && e.live {
			if cur, ok = parseInt(v); !ok {
				return errNotIntSentinel
			}
		}
		if (incr > 0 && cur > math.MaxInt64-incr) || (incr < 0 && cur < math.MinInt64-incr) {
			return errOverflowSentinel
		}
		result = cur + incr
		return s.put(e, write{set: map[string][]byte{f: strconv.AppendInt(nil, result, 10)}, touch: true})
	})
	switch {
	case errors.Is(err, errNotIntSentinel):
		c.fail(conn, "ERR hash value is not an integer")
	case errors.Is(err, errOverflowSentinel):
		c.fail(conn, "ERR increment or decrement would overflow")
	case err != nil:
		s.failErr(c, conn, err)
	default:
		conn.WriteInt64(result)
	}
}

var (
	errNotIntSentinel   = errors.New("not an integer")
	errOverflowSentinel = errors.New("overflow")
)
