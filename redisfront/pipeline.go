package redisfront

import (
	"slices"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// A pipeline's commands on distinct keys run concurrently: a write waits
// for its commit, and commits group the writes that wait together, so a
// pipeline of 16 SETs costs about one commit instead of 16 in a row. Replies
// keep the commands' order. Commands on a key already in flight, and every
// command that is not on one key (MULTI, AUTH, SCAN, ...), wait for the
// commands before them.

// bufConn collects one command's reply while it runs beside others.
type bufConn struct {
	redcon.Conn
	wr   *redcon.Writer
	errs int
}

func (b *bufConn) WriteError(msg string)       { b.wr.WriteError(msg) }
func (b *bufConn) WriteString(str string)      { b.wr.WriteString(str) }
func (b *bufConn) WriteBulk(bulk []byte)       { b.wr.WriteBulk(bulk) }
func (b *bufConn) WriteBulkString(bulk string) { b.wr.WriteBulkString(bulk) }
func (b *bufConn) WriteInt(num int)            { b.wr.WriteInt(num) }
func (b *bufConn) WriteInt64(num int64)        { b.wr.WriteInt64(num) }
func (b *bufConn) WriteUint64(num uint64)      { b.wr.WriteUint64(num) }
func (b *bufConn) WriteArray(count int)        { b.wr.WriteArray(count) }
func (b *bufConn) WriteNull()                  { b.wr.WriteNull() }
func (b *bufConn) WriteRaw(data []byte)        { b.wr.WriteRaw(data) }
func (b *bufConn) WriteAny(v any)              { b.wr.WriteAny(v) }

// oneKey reports whether a command reads or writes only args[1], so that
// it may run beside commands on other keys.
func (cmd *command) oneKey(args [][]byte) bool {
	if cmd.first != 1 || len(args) < 2 {
		return false
	}
	return cmd.last == 1 || len(args) == 2
}

// wave is a set of commands on distinct keys, run together.
type wave struct {
	cmds [][][]byte
	defs []*command
	keys map[string]struct{}
}

func (w *wave) add(def *command, args [][]byte) bool {
	if w.keys == nil {
		w.keys = make(map[string]struct{})
	}
	if _, busy := w.keys[string(args[1])]; busy {
		return false
	}
	w.keys[string(args[1])] = struct{}{}
	w.cmds = append(w.cmds, args)
	w.defs = append(w.defs, def)
	return true
}

// flush runs the wave's commands concurrently and writes their replies in
// order.
func (s *Server) flush(c *client, conn redcon.Conn, w *wave) {
	switch len(w.cmds) {
	case 0:
		return
	case 1:
		s.run(c, conn, w.defs[0], w.cmds[0])
	default:
		if !slices.ContainsFunc(w.defs, func(d *command) bool { return d.write }) {
			for i := range w.cmds {
				s.run(c, conn, w.defs[i], w.cmds[i])
			}
			break
		}
		// Writes wait for a commit: they run on goroutines of their own so
		// that their commits group. Reads take microseconds of CPU: they
		// run here meanwhile (another goroutine each would cost more than
		// it saves, and other connections keep the other cores busy).
		outs := make([]*bufConn, len(w.cmds))
		var wg sync.WaitGroup
		for i := range w.cmds {
			outs[i] = &bufConn{Conn: conn, wr: redcon.NewWriter(nil)}
			if w.defs[i].write {
				wg.Add(1)
				s.spawn(func() {
					defer wg.Done()
					s.run(c, outs[i], w.defs[i], w.cmds[i])
				})
			}
		}
		for i := range w.cmds {
			if !w.defs[i].write {
				s.run(c, outs[i], w.defs[i], w.cmds[i])
			}
		}
		wg.Wait()
		for _, o := range outs {
			conn.WriteRaw(o.wr.Buffer())
		}
	}
	w.cmds, w.defs = w.cmds[:0], w.defs[:0]
	clear(w.keys)
}

// servePipeline runs cmd and the commands read with it.
func (s *Server) servePipeline(c *client, conn redcon.Conn, first [][]byte, rest []redcon.Command) {
	cmds := make([][][]byte, 0, 1+len(rest))
	cmds = append(cmds, first)
	for _, cmd := range rest {
		cmds = append(cmds, cmd.Args)
	}
	s.serveSequence(c, conn, cmds)
}

// serveSequence runs commands as a pipeline: in waves of commands on
// distinct keys, replies in order.
func (s *Server) serveSequence(c *client, conn redcon.Conn, cmds [][][]byte) {
	var dbuf [32]*command
	defs := dbuf[:0]
	reads := true
	for _, args := range cmds {
		def := s.def(args[0])
		defs = append(defs, def)
		reads = reads && def != nil && !def.write && def.name != "quit"
	}
	if reads {
		// Reads only (redis-benchmark -P, a page's MGET-like burst):
		// they run here one after the other anyway (flush), so the waves'
		// bookkeeping would be spent for nothing.
		_ = s.warmKeys(defs, cmds) // the sum keeps the loads
		t := time.Since(epoch)
		for i, args := range cmds {
			t = s.serveDef(c, conn, defs[i], args, t)
		}
		return
	}
	var w wave
	for i, args := range cmds {
		def := defs[i]
		if def != nil && c.authed && !c.multi && def.oneKey(args) && def.arityOK(len(args)) {
			if !w.add(def, args) {
				s.flush(c, conn, &w)
				w.add(def, args)
			}
			continue
		}
		s.flush(c, conn, &w)
		s.serveOne(c, conn, args)
		if def != nil && def.name == "quit" {
			return // QUIT ends the connection: nothing after it runs
		}
	}
	s.flush(c, conn, &w)
}

// warmKeys loads the key cache entries of a pipeline's one-key commands
// before any of them runs. With a large key space each is a cache miss or
// two (a pipelined GET spent a tenth of its CPU on them); loaded here, in
// a loop whose loads do not depend on each other, the CPU waits for
// several at once, where the commands would wait for them one after the
// other. (Warming the sessions' own cache entries the same way gained
// nothing: their lookups are too long for the CPU to overlap.)
func (s *Server) warmKeys(defs []*command, cmds [][][]byte) uint8 {
	var sink uint8
	for i, args := range cmds {
		if defs[i] != nil && defs[i].first == 1 && len(args) > 1 {
			sink += s.keys.peek(args[1])
		}
	}
	return sink
}

// maxWorkers bounds the goroutines that run pipelined writes; beyond it a
// write waits for one.
const maxWorkers = 1024

// spawn runs fn on a worker goroutine. Workers live until Shutdown: a
// write's call path through the node and the store is deep, and a fresh
// goroutine would grow its stack on every write.
func (s *Server) spawn(fn func()) {
	select {
	case s.work <- fn:
		return
	default:
	}
	if s.workers.Add(1) <= maxWorkers {
		go s.worker(fn)
		return
	}
	s.workers.Add(-1)
	s.work <- fn
}

func (s *Server) worker(fn func()) {
	for {
		fn()
		select {
		case fn = <-s.work:
		case <-s.ctx.Done():
			s.workers.Add(-1)
			return
		}
	}
}
