package redisfront

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/node"
)

// RedisVersion is the version INFO and HELLO announce: the replies follow
// Redis 7.2's.
const RedisVersion = "7.2.0"

// client is one connection's state.
type client struct {
	id     int64
	name   string
	authed bool
	// resp3 is set by HELLO 3: nulls and maps take their RESP3 forms.
	resp3 bool
	// multi is set between MULTI and EXEC/DISCARD; queue holds the
	// commands to run at EXEC, queueErr a command refused while queuing.
	multi    bool
	queue    [][][]byte
	queueErr bool
	// queued is the memory the queue holds (queueCost).
	queued int
	// errs counts error replies, for the per-command error metric.
	errs int
}

func (c *client) fail(conn redcon.Conn, msg string) {
	if b, ok := conn.(*bufConn); ok {
		b.errs++
	} else {
		c.errs++
	}
	conn.WriteError(msg)
}

// null writes a null reply in the connection's protocol.
func (c *client) null(conn redcon.Conn) {
	if c.resp3 {
		conn.WriteRaw([]byte("_\r\n"))
	} else {
		conn.WriteNull()
	}
}

// mapLen starts a map of n pairs: a RESP3 map, or a flat RESP2 array.
func (c *client) mapLen(conn redcon.Conn, n int) {
	if c.resp3 {
		conn.WriteRaw(strconv.AppendInt([]byte{'%'}, int64(n), 10))
		conn.WriteRaw([]byte("\r\n"))
	} else {
		conn.WriteArray(2 * n)
	}
}

// errCount returns the error replies counted for conn.
func (c *client) errCount(conn redcon.Conn) int {
	if b, ok := conn.(*bufConn); ok {
		return b.errs
	}
	return c.errs
}

// handler runs one command whose arity was checked.
type handler func(s *Server, c *client, conn redcon.Conn, args [][]byte)

// command describes one command, as COMMAND reports it.
type command struct {
	name  string
	arity int // as Redis: n exactly, -n at least n
	flags []string
	// first, last, step locate the keys among the arguments.
	first, last, step int
	fn                handler
	// noAuth commands run before AUTH; noQueue ones run at once inside
	// MULTI.
	noAuth, noQueue bool
	// write is set for commands that write (flag "write").
	write bool
	m     cmdMetrics
}

func (cmd *command) arityOK(n int) bool {
	if cmd.arity >= 0 {
		return n == cmd.arity
	}
	return n >= -cmd.arity
}

var (
	ro = []string{"readonly", "fast"}
	rw = []string{"write", "fast"}
	cn = []string{"fast", "connection"}
)

// commandTable lists every command the front answers.
func commandTable() []*command {
	return []*command{
		{name: "ping", arity: -1, flags: cn, fn: cmdPing},
		{name: "echo", arity: 2, flags: cn, fn: cmdEcho},
		{name: "auth", arity: -2, flags: cn, fn: cmdAuth, noAuth: true, noQueue: true},
		{name: "hello", arity: -1, flags: cn, fn: cmdHello, noAuth: true, noQueue: true},
		{name: "select", arity: 2, flags: cn, fn: cmdSelect},
		{name: "client", arity: -2, flags: cn, fn: cmdClient},
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, fn: cmdInfo},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, fn: cmdCommand},
		{name: "config", arity: -2, flags: []string{"admin", "loading", "stale"}, fn: cmdConfig},
		{name: "quit", arity: -1, flags: cn, fn: cmdQuit, noAuth: true, noQueue: true},
		{name: "reset", arity: 1, flags: cn, fn: cmdReset, noAuth: true, noQueue: true},
		{name: "multi", arity: 1, flags: cn, fn: cmdMulti, noQueue: true},
		{name: "exec", arity: 1, flags: []string{"loading", "stale"}, fn: cmdExec, noQueue: true},
		{name: "discard", arity: 1, flags: cn, fn: cmdDiscard, noQueue: true},
		{name: "dbsize", arity: 1, flags: []string{"readonly"}, fn: cmdDBSize},

		{name: "get", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdGet},
		{name: "set", arity: -3, flags: []string{"write"}, first: 1, last: 1, step: 1, fn: cmdSet},
		{name: "setex", arity: 4, flags: rw, first: 1, last: 1, step: 1, fn: cmdSetex},
		{name: "psetex", arity: 4, flags: rw, first: 1, last: 1, step: 1, fn: cmdSetex},
		{name: "setnx", arity: 3, flags: rw, first: 1, last: 1, step: 1, fn: cmdSetnx},
		{name: "getex", arity: -2, flags: rw, first: 1, last: 1, step: 1, fn: cmdGetex},
		{name: "getdel", arity: 2, flags: rw, first: 1, last: 1, step: 1, fn: cmdGetdel},
		{name: "mget", arity: -2, flags: ro, first: 1, last: -1, step: 1, fn: cmdMget},
		{name: "del", arity: -2, flags: []string{"write"}, first: 1, last: -1, step: 1, fn: cmdDel},
		{name: "unlink", arity: -2, flags: rw, first: 1, last: -1, step: 1, fn: cmdDel},
		{name: "exists", arity: -2, flags: ro, first: 1, last: -1, step: 1, fn: cmdExists},
		{name: "expire", arity: -3, flags: rw, first: 1, last: 1, step: 1, fn: cmdExpire},
		{name: "pexpire", arity: -3, flags: rw, first: 1, last: 1, step: 1, fn: cmdExpire},
		{name: "expireat", arity: -3, flags: rw, first: 1, last: 1, step: 1, fn: cmdExpire},
		{name: "pexpireat", arity: -3, flags: rw, first: 1, last: 1, step: 1, fn: cmdExpire},
		{name: "persist", arity: 2, flags: rw, first: 1, last: 1, step: 1, fn: cmdPersist},
		{name: "ttl", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdTTL},
		{name: "pttl", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdTTL},
		{name: "expiretime", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdTTL},
		{name: "pexpiretime", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdTTL},
		{name: "type", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdType},
		{name: "rename", arity: 3, flags: []string{"write"}, first: 1, last: 2, step: 1, fn: cmdRename},
		{name: "renamenx", arity: 3, flags: rw, first: 1, last: 2, step: 1, fn: cmdRename},
		{name: "scan", arity: -2, flags: []string{"readonly"}, fn: cmdScan},
		{name: "keys", arity: 2, flags: []string{"readonly"}, fn: cmdKeys},

		{name: "hset", arity: -4, flags: rw, first: 1, last: 1, step: 1, fn: cmdHset},
		{name: "hmset", arity: -4, flags: rw, first: 1, last: 1, step: 1, fn: cmdHset},
		{name: "hsetnx", arity: 4, flags: rw, first: 1, last: 1, step: 1, fn: cmdHsetnx},
		{name: "hget", arity: 3, flags: ro, first: 1, last: 1, step: 1, fn: cmdHget},
		{name: "hmget", arity: -3, flags: ro, first: 1, last: 1, step: 1, fn: cmdHmget},
		{name: "hgetall", arity: 2, flags: []string{"readonly"}, first: 1, last: 1, step: 1, fn: cmdHgetall},
		{name: "hdel", arity: -3, flags: rw, first: 1, last: 1, step: 1, fn: cmdHdel},
		{name: "hexists", arity: 3, flags: ro, first: 1, last: 1, step: 1, fn: cmdHexists},
		{name: "hlen", arity: 2, flags: ro, first: 1, last: 1, step: 1, fn: cmdHlen},
		{name: "hkeys", arity: 2, flags: []string{"readonly"}, first: 1, last: 1, step: 1, fn: cmdHkeys},
		{name: "hvals", arity: 2, flags: []string{"readonly"}, first: 1, last: 1, step: 1, fn: cmdHvals},
		{name: "hincrby", arity: 4, flags: rw, first: 1, last: 1, step: 1, fn: cmdHincrby},
	}
}

// Commands returns the names of the commands the front answers, sorted.
func Commands() []string {
	var names []string
	for _, c := range commandTable() {
		names = append(names, c.name)
	}
	slices.Sort(names)
	return names
}

func (s *Server) buildCommands() {
	s.cmds = make(map[string]*command)
	for _, c := range commandTable() {
		c.m = s.m.forCommand(c.name)
		c.write = slices.Contains(c.flags, "write")
		s.cmds[c.name] = c
	}
	s.unknown = s.m.forCommand("unknown")
}

// lower returns name in lower case, in buf when it fits.
func lower(buf []byte, name []byte) []byte {
	out := buf[:0]
	for _, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		out = append(out, b)
	}
	return out
}

// serveCommand is redcon's handler: one command of a pipeline.
func (s *Server) serveCommand(conn redcon.Conn, cmd redcon.Command) {
	c := conn.Context().(*client)
	if len(conn.PeekPipeline()) > 0 {
		s.servePipeline(c, conn, cmd.Args, conn.ReadPipeline())
		return
	}
	s.serveOne(c, conn, cmd.Args)
}

// serveOne serves one command in order.
func (s *Server) serveOne(c *client, conn redcon.Conn, args [][]byte) {
	s.serveDef(c, conn, s.def(args[0]), args, time.Since(epoch))
}

// def returns the command named name, nil for an unknown one.
func (s *Server) def(name []byte) *command {
	var buf [32]byte
	return s.cmds[string(lower(buf[:], name))]
}

// serveDef serves one command in order, def its definition (nil:
// unknown), start the time it began (time.Since(epoch)); it returns the
// time it ended, which a pipeline takes as the next command's start.
func (s *Server) serveDef(c *client, conn redcon.Conn, def *command, args [][]byte, start time.Duration) time.Duration {
	cmd := redcon.Command{Args: args}
	if !c.authed && (def == nil || !def.noAuth) {
		c.errs++
		conn.WriteError("NOAUTH Authentication required.")
		if def != nil {
			def.m.count.Inc()
			def.m.errors.Inc()
		}
		return start
	}
	if c.multi && (def == nil || !def.noQueue) {
		switch {
		case def == nil:
			c.queueErr = true
			s.unknownCommand(c, conn, cmd.Args)
		case !def.arityOK(len(cmd.Args)):
			c.queueErr = true
			c.fail(conn, arityError(def.name))
		case c.queueErr:
			// EXEC will discard the transaction: nothing more is
			// kept for it.
			conn.WriteString("QUEUED")
		default:
			c.queued += queueCost(cmd.Args)
			if limit := s.maxQueued(); c.queued > limit {
				c.queue, c.queued, c.queueErr = nil, 0, true
				c.fail(conn, fmt.Sprintf("ERR MULTI queue over %d bytes: EXEC will discard the transaction", limit))
				return start
			}
			c.queue = append(c.queue, cmd.Args)
			conn.WriteString("QUEUED")
		}
		return start
	}
	if def == nil {
		s.unknownCommand(c, conn, cmd.Args)
		return start
	}
	return s.runFrom(c, conn, def, cmd.Args, start)
}

// maxQueued bounds the memory one client's MULTI queue holds: four
// requests of the largest size. Without a bound a client could queue
// without end (64 requests of 4 MiB of one-byte arguments held 1.1 GB).
func (s *Server) maxQueued() int { return 4 * s.cfg.MaxRequestBytes }

// queueCost is what a queued command holds: its arguments and the slice
// headers that refer to them.
func queueCost(args [][]byte) int {
	n := 24
	for _, a := range args {
		n += 24 + len(a)
	}
	return n
}

// epoch is what run measures commands' durations from: time.Since reads
// only the monotonic clock, time.Now also the wall clock.
var epoch = time.Now()

// run executes a known command and counts it.
func (s *Server) run(c *client, conn redcon.Conn, def *command, args [][]byte) {
	s.runFrom(c, conn, def, args, time.Since(epoch))
}

// runFrom is run of a command that began at start (time.Since(epoch));
// it returns the time it ended. A clock read is a tenth of a pipelined
// read's CPU on a virtual machine: each command of a pipeline takes the
// end of the one before as its start.
func (s *Server) runFrom(c *client, conn redcon.Conn, def *command, args [][]byte, start time.Duration) time.Duration {
	errs := c.errCount(conn)
	if !def.arityOK(len(args)) {
		c.fail(conn, arityError(def.name))
	} else {
		def.fn(s, c, conn, args)
	}
	def.m.count.Inc()
	if c.errCount(conn) != errs {
		def.m.errors.Inc()
	}
	end := time.Since(epoch)
	def.m.duration.Observe((end - start).Seconds())
	return end
}

func (s *Server) unknownCommand(c *client, conn redcon.Conn, args [][]byte) {
	s.unknown.count.Inc()
	s.unknown.errors.Inc()
	var b strings.Builder
	for _, a := range args[1:] {
		if b.Len() >= 128 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", trunc(a, 128-b.Len()))
	}
	c.fail(conn, fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", trunc(args[0], 128), b.String()))
}

func trunc(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func arityError(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// Redis's error texts.
const (
	errSyntax    = "ERR syntax error"
	errNotInt    = "ERR value is not an integer or out of range"
	errWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNoSuchKey = "ERR no such key"
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
)

// failErr answers an error from the node or the mapping.
func (s *Server) failErr(c *client, conn redcon.Conn, err error) {
	switch {
	case errors.Is(err, errWrongTypeSentinel):
		c.fail(conn, errWrongType)
	case errors.Is(err, errKeyExhausted):
		c.fail(conn, "ERR "+err.Error())
	case errors.Is(err, errTooLarge):
		c.fail(conn, "ERR "+err.Error())
	case errors.Is(err, crdt.ErrTooLarge):
		// What fits checks is in range: the whole is over.
		c.fail(conn, fmt.Sprintf("ERR sessionmesh: over the mesh's size limit: the key's data would take over %d bytes", s.n.Limits().MaxSessionBytes))
	case errors.Is(err, node.ErrTooManyFields):
		// The key's name takes one of the session's fields.
		c.fail(conn, fmt.Sprintf("ERR sessionmesh: a hash holds at most %d fields", s.n.MaxFields()-1))
	case errors.Is(err, node.ErrInvalid):
		c.fail(conn, "ERR sessionmesh: "+err.Error())
	case errors.Is(err, node.ErrClosed):
		c.fail(conn, "ERR sessionmesh: this peer is shutting down")
	case errors.Is(err, node.ErrUnavailable):
		// Partial replication: no holder of the key answered (a
		// holder cut off until failure detection notices). Clients
		// such as go-redis retry TRYAGAIN on their own.
		s.log.Warn("command failed: key unavailable", "err", err)
		c.fail(conn, "TRYAGAIN sessionmesh: no holder of this key answered, try again")
	case errors.Is(err, errRetry):
		c.fail(conn, "ERR sessionmesh: the key changed concurrently too many times, try again")
	default:
		s.log.Error("command failed", "err", err)
		c.fail(conn, "ERR sessionmesh: internal error: "+err.Error())
	}
}

func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

func cmdPing(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	switch len(args) {
	case 1:
		conn.WriteString("PONG")
	case 2:
		conn.WriteBulk(args[1])
	default:
		c.fail(conn, arityError("ping"))
	}
}

func cmdEcho(s *Server, c *client, conn redcon.Conn, args [][]byte) { conn.WriteBulk(args[1]) }

func cmdAuth(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		pass = args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.fail(conn, errSyntax)
		return
	}
	if s.cfg.Password == "" {
		// As Redis's default user without a password: AUTH default <any>
		// passes, AUTH <password> is a configuration mistake.
		if user != nil && string(user) == "default" {
			conn.WriteString("OK")
			return
		}
		if user != nil {
			s.m.authFails.Inc()
			c.fail(conn, errWrongPass)
			return
		}
		c.fail(conn, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	if !s.checkPassword(user, pass) {
		s.m.authFails.Inc()
		c.fail(conn, errWrongPass)
		return
	}
	c.authed = true
	conn.WriteString("OK")
}

// cmdHello answers HELLO [protover [AUTH user pass] [SETNAME name]]: 2
// and 3 are spoken (RESP3 differs only in nulls and maps for the commands
// here), others get NOPROTO.
func cmdHello(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	i := 1
	if len(args) > 1 {
		v, ok := parseInt(args[1])
		if !ok {
			c.fail(conn, "ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.fail(conn, "NOPROTO sorry, this protocol version is not supported.")
			return
		}
		i = 2
	}
	var name []byte
	authed := c.authed
	for ; i < len(args); i++ {
		switch {
		case strings.EqualFold(string(args[i]), "auth") && i+2 < len(args):
			open := s.cfg.Password == "" && string(args[i+1]) == "default"
			if !open && !s.checkPassword(args[i+1], args[i+2]) {
				s.m.authFails.Inc()
				c.fail(conn, errWrongPass)
				return
			}
			authed = true
			i += 2
		case strings.EqualFold(string(args[i]), "setname") && i+1 < len(args):
			name = args[i+1]
			i++
		default:
			c.fail(conn, "ERR Syntax error in HELLO option '"+string(args[i])+"'")
			return
		}
	}
	if !authed {
		c.errs++
		conn.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	c.authed = true
	if len(args) > 1 {
		c.resp3 = args[1][0] == '3'
	}
	if name != nil {
		if !validName(name) {
			c.fail(conn, "ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(name)
	}
	proto := 2
	if c.resp3 {
		proto = 3
	}
	c.mapLen(conn, 7)
	conn.WriteBulkString("server")
	conn.WriteBulkString("redis")
	conn.WriteBulkString("version")
	conn.WriteBulkString(RedisVersion)
	conn.WriteBulkString("proto")
	conn.WriteInt(proto)
	conn.WriteBulkString("id")
	conn.WriteInt64(c.id)
	conn.WriteBulkString("mode")
	conn.WriteBulkString("standalone")
	conn.WriteBulkString("role")
	conn.WriteBulkString("master")
	conn.WriteBulkString("modules")
	conn.WriteArray(0)
}

func cmdSelect(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	db, ok := parseInt(args[1])
	switch {
	case !ok:
		c.fail(conn, errNotInt)
	case db != 0:
		c.fail(conn, "ERR DB index is out of range")
	default:
		conn.WriteString("OK")
	}
}

func validName(name []byte) bool {
	for _, b := range name {
		if b < '!' || b > '~' {
			return false
		}
	}
	return true
}

func (s *Server) clientInfo(c *client, conn redcon.Conn) string {
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=0 name=%s age=0 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=%d resp=%d lib-name= lib-ver=\n",
		c.id, conn.RemoteAddr(), conn.NetConn().LocalAddr(), c.name, multiCount(c), 2+boolInt(c.resp3))
}

func multiCount(c *client) int {
	if !c.multi {
		return -1
	}
	return len(c.queue)
}

func cmdClient(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	argc := len(args)
	switch {
	case sub == "setname" && argc == 3:
		if !validName(args[2]) {
			c.fail(conn, "ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(args[2])
		conn.WriteString("OK")
	case sub == "getname" && argc == 2:
		if c.name == "" {
			c.null(conn)
		} else {
			conn.WriteBulkString(c.name)
		}
	case sub == "id" && argc == 2:
		conn.WriteInt64(c.id)
	case sub == "setinfo" && argc == 4:
		switch strings.ToLower(string(args[2])) {
		case "lib-name", "lib-ver":
			conn.WriteString("OK")
		default:
			c.fail(conn, "ERR Unrecognized option '"+string(args[2])+"'")
		}
	case (sub == "info" && argc == 2) || (sub == "list" && argc == 2):
		conn.WriteBulkString(s.clientInfo(c, conn))
	case (sub == "no-evict" || sub == "no-touch") && argc == 3:
		conn.WriteString("OK")
	case sub == "setname" || sub == "getname" || sub == "id" || sub == "setinfo" || sub == "info" ||
		sub == "list" || sub == "no-evict" || sub == "no-touch":
		c.fail(conn, "ERR wrong number of arguments for 'client|"+sub+"' command")
	default:
		c.fail(conn, "ERR unknown subcommand '"+string(trunc(args[1], 128))+"'. Try CLIENT HELP.")
	}
}

func cmdInfo(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	var port string
	if a := s.Addr(); a != nil {
		_, port, _ = strings.Cut(a.String(), "]:")
		if port == "" {
			_, port, _ = strings.Cut(a.String(), ":")
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Server\r\nredis_version:%s\r\nredis_mode:standalone\r\nsessionmesh_peer:%s\r\nprocess_id:%d\r\ntcp_port:%s\r\nuptime_in_seconds:%d\r\n\r\n",
		RedisVersion, s.n.ID(), os.Getpid(), port, int64(time.Since(s.started).Seconds()))
	fmt.Fprintf(&b, "# Clients\r\nconnected_clients:%d\r\nmaxclients:%d\r\n\r\n", s.open.Load(), s.cfg.MaxClients)
	fmt.Fprintf(&b, "# Persistence\r\nloading:0\r\n\r\n")
	fmt.Fprintf(&b, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n")
	fmt.Fprintf(&b, "# Keyspace\r\n")
	conn.WriteBulkString(b.String())
}

func (s *Server) writeCommandInfo(conn redcon.Conn, def *command) {
	conn.WriteArray(6)
	conn.WriteBulkString(def.name)
	conn.WriteInt(def.arity)
	conn.WriteArray(len(def.flags))
	for _, f := range def.flags {
		conn.WriteString(f)
	}
	conn.WriteInt(def.first)
	conn.WriteInt(def.last)
	conn.WriteInt(def.step)
}

func (s *Server) sortedCommands() []*command {
	out := make([]*command, 0, len(s.cmds))
	for _, d := range s.cmds {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return out
}

func cmdCommand(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	if len(args) == 1 {
		all := s.sortedCommands()
		conn.WriteArray(len(all))
		for _, d := range all {
			s.writeCommandInfo(conn, d)
		}
		return
	}
	switch strings.ToLower(string(args[1])) {
	case "count":
		conn.WriteInt(len(s.cmds))
	case "docs":
		// No documentation: an empty map, which redis-cli accepts.
		c.mapLen(conn, 0)
	case "list":
		all := s.sortedCommands()
		conn.WriteArray(len(all))
		for _, d := range all {
			conn.WriteBulkString(d.name)
		}
	case "info":
		conn.WriteArray(len(args) - 2)
		for _, a := range args[2:] {
			if d, ok := s.cmds[strings.ToLower(string(a))]; ok {
				s.writeCommandInfo(conn, d)
			} else {
				c.null(conn)
			}
		}
	default:
		c.fail(conn, "ERR unknown subcommand '"+string(trunc(args[1], 128))+"'. Try COMMAND HELP.")
	}
}

// cmdConfig answers CONFIG GET with no parameter (the front has none a
// client can read; redis-benchmark asks for save and appendonly).
func cmdConfig(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	switch sub := strings.ToLower(string(args[1])); {
	case sub == "get" && len(args) >= 3:
		c.mapLen(conn, 0)
	case sub == "get":
		c.fail(conn, "ERR wrong number of arguments for 'config|get' command")
	default:
		c.fail(conn, "ERR unknown subcommand '"+string(trunc(args[1], 128))+"'. Try CONFIG HELP.")
	}
}

func cmdQuit(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	conn.WriteString("OK")
	conn.Close()
}

func cmdReset(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	c.multi, c.queue, c.queued, c.queueErr, c.name, c.resp3 = false, nil, 0, false, "", false
	c.authed = s.cfg.Password == ""
	conn.WriteString("RESET")
}

func cmdMulti(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	if c.multi {
		c.fail(conn, "ERR MULTI calls can not be nested")
		return
	}
	c.multi = true
	conn.WriteString("OK")
}

func cmdDiscard(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	if !c.multi {
		c.fail(conn, "ERR DISCARD without MULTI")
		return
	}
	c.multi, c.queue, c.queued, c.queueErr = false, nil, 0, false
	conn.WriteString("OK")
}

// cmdExec runs the queued commands as a pipeline, their replies in one
// array: writes on distinct keys are applied concurrently and share
// commits, each command sees the ones before it on its key. The whole is
// not isolated from other clients' commands (no peer of a mesh could
// promise that of the others anyway).
func cmdExec(s *Server, c *client, conn redcon.Conn, args [][]byte) {
	if !c.multi {
		c.fail(conn, "ERR EXEC without MULTI")
		return
	}
	queue, bad := c.queue, c.queueErr
	c.multi, c.queue, c.queued, c.queueErr = false, nil, 0, false
	if bad {
		c.fail(conn, "EXECABORT Transaction discarded because of previous errors.")
		return
	}
	conn.WriteArray(len(queue))
	s.serveSequence(c, conn, queue)
}
