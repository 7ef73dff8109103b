package redisfront

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/redcon"

	"github.com/sessionmesh/sessionmesh/node"
)

// Defaults of Config.
const (
	DefaultMaxClients      = 10_000
	DefaultMaxRequestBytes = 4 << 20
	DefaultIdleTimeout     = 10 * time.Minute
	// writeTimeout bounds a reply write to a client that stopped reading.
	writeTimeout = 30 * time.Second
)

// ErrNoPassword reports a listener that is not on loopback without a
// password: the front refuses to serve sessions to the network unguarded.
var ErrNoPassword = errors.New("redisfront: a password is required when listening on a non-loopback address")

// Config configures a Server. The zero value of each field takes the
// default documented on it.
type Config struct {
	// Password, when set, must be given with AUTH (or HELLO ... AUTH) before
	// any other command. Required when the listener is not on loopback.
	Password string
	// MaxClients bounds open connections; beyond it a new connection gets
	// "ERR max number of clients reached" and is closed. Default
	// DefaultMaxClients.
	MaxClients int
	// MaxRequestBytes bounds one request (a command and its arguments, or
	// what is read while waiting for one); beyond it the client gets
	// "ERR Protocol error: invalid bulk length" and is closed. A client's
	// MULTI queue holds at most four times this; a command beyond it is
	// refused and EXEC discards the transaction. Default
	// DefaultMaxRequestBytes.
	MaxRequestBytes int
	// IdleTimeout closes a connection that sent nothing for this long;
	// negative turns it off. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// SessionIdleTimeout is the idle timeout of a session created without
	// an expiry (SET without EX, HSET). Default: 30 minutes.
	SessionIdleTimeout time.Duration
	// Lifetime is the absolute lifetime of the sessions keys create; it
	// bounds every TTL. Default: 12 hours.
	Lifetime time.Duration
	// Registerer receives the front's metrics (sessionmesh_redis_*); nil
	// keeps them unexported.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxClients <= 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	}
	if c.SessionIdleTimeout <= 0 {
		c.SessionIdleTimeout = 30 * time.Minute
	}
	if c.Lifetime <= 0 {
		c.Lifetime = 12 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Server answers the Redis protocol over a node's sessions. Create it with
// New, run it with Serve, stop it with Shutdown.
type Server struct {
	n   *node.Node
	cfg Config
	log *slog.Logger
	m   *metrics
	// ctx is what node calls run under; cancelled by Shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	rs      *redcon.Server
	mu      sync.Mutex
	ln      net.Listener
	closing bool
	open    atomic.Int64
	nextID  atomic.Int64
	conns   sync.WaitGroup
	started time.Time

	cmds    map[string]*command
	unknown cmdMetrics
	keys    *keyCache

	// work hands pipelined writes to idle workers (spawn).
	work    chan func()
	workers atomic.Int64
}

// New returns a front serving n's sessions.
func New(n *node.Node, cfg Config) (*Server, error) {
	if n == nil {
		return nil, errors.New("redisfront: nil node")
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{n: n, cfg: cfg, log: cfg.Logger.With("component", "redis"), m: m, started: time.Now()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.buildCommands()
	s.keys = newKeyCache()
	s.work = make(chan func())
	s.rs = redcon.NewServerNetwork("tcp", "", s.serveCommand, s.accept, s.closed)
	return s, nil
}

// IsLoopback reports whether addr (a net.Addr of a listener) is on a
// loopback address.
func IsLoopback(addr net.Addr) bool {
	if a, ok := addr.(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	return false
}

// Serve accepts connections on ln until Shutdown. It refuses a non-loopback
// listener when no password is set (ErrNoPassword). It returns nil after
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.Password == "" && !IsLoopback(ln.Addr()) {
		return fmt.Errorf("%w (listening on %s)", ErrNoPassword, ln.Addr())
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = &limitListener{Listener: ln, max: s.cfg.MaxRequestBytes, idle: s.cfg.IdleTimeout}
	wrapped := s.ln
	s.mu.Unlock()
	err := s.rs.Serve(wrapped)
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil
	}
	return fmt.Errorf("redisfront: serve: %w", err)
}

// Shutdown stops accepting, closes every connection (a command being
// executed finishes first) and waits for their goroutines until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	defer s.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisfront: shutdown: connections still open: %w", ctx.Err())
	}
}

// Addr returns the listening address, nil before Serve.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func (s *Server) accept(conn redcon.Conn) bool {
	if s.open.Add(1) > int64(s.cfg.MaxClients) {
		s.open.Add(-1)
		s.m.rejected.Inc()
		_, _ = conn.NetConn().Write([]byte("-ERR max number of clients reached\r\n"))
		return false
	}
	s.conns.Add(1)
	s.m.connsOpen.Inc()
	s.m.connsTotal.Inc()
	conn.SetContext(&client{id: s.nextID.Add(1), authed: s.cfg.Password == ""})
	return true
}

func (s *Server) closed(conn redcon.Conn, err error) {
	s.open.Add(-1)
	s.m.connsOpen.Dec()
	s.conns.Done()
	var ne net.Error
	if err != nil && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, errRequestTooLarge) {
		s.log.Debug("connection closed", "remote", conn.RemoteAddr(), "err", err)
	}
}

// checkPassword compares in constant time.
func (s *Server) checkPassword(user, pass []byte) bool {
	if s.cfg.Password == "" {
		return false
	}
	okUser := user == nil || string(user) == "default"
	okPass := subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password)) == 1
	return okUser && okPass
}

// errRequestTooLarge ends a connection whose request passed the bound.
var errRequestTooLarge = errors.New("redisfront: request too large")

// limitListener hands out connections that bound what is read between two
// commands and how long a reply write may block.
type limitListener struct {
	net.Listener
	max  int
	idle time.Duration
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &limitConn{Conn: c, max: l.max, idle: l.idle, raw: newRawIO(c, l.idle)}, nil
}

// limitConn hands redcon whole requests (framer) and bounds one request:
// a request larger than max ends the connection with Redis's error. It
// also closes idle clients and bounds reply writes (rawIO does both when
// it serves the connection).
type limitConn struct {
	net.Conn
	max   int
	idle  time.Duration
	raw   *rawIO // nil: c.Conn's Read and Write
	frame framer
	err   error // the socket's error, returned once the requests before it are handed
}

func (c *limitConn) Read(p []byte) (int, error) {
	for {
		if n := c.frame.take(p); n > 0 {
			return n, nil
		}
		if c.err != nil {
			return 0, c.err
		}
		n, err := c.readSocket(c.frame.room())
		c.frame.filled(n)
		c.err = err
		if c.frame.over(c.max) {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte("-ERR Protocol error: invalid bulk length\r\n"))
			return 0, errRequestTooLarge
		}
	}
}

func (c *limitConn) readSocket(p []byte) (int, error) {
	if c.raw != nil {
		return c.raw.read(p)
	}
	if c.idle > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	}
	return c.Conn.Read(p)
}

func (c *limitConn) Write(p []byte) (int, error) {
	if c.raw != nil {
		return c.raw.write(p)
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.Conn.Write(p)
}
