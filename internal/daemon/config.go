package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/redisfront"
	"github.com/sessionmesh/sessionmesh/transport"
)

// Defaults of the settings that have one.
const (
	// DefaultDataDir holds the store and the peer's identity key.
	DefaultDataDir = "./sessionmesh-data"
	// DefaultListen is the libp2p listen address: loopback TCP on a fixed
	// port, so that the bootstrap address of a first peer is predictable.
	// Peers on other machines need a routable address here.
	DefaultListen = "/ip4/127.0.0.1/tcp/7481"
	// DefaultHTTPAddr is the HTTP API address, loopback only.
	DefaultHTTPAddr = "127.0.0.1:7480"
	// DefaultMaxBodyBytes bounds an HTTP request body: room for a session
	// at its largest (512 KiB encoded) once base64 and JSON escaping have
	// inflated it.
	DefaultMaxBodyBytes = 1 << 20
	// MinAPITokenLen is the shortest bearer token accepted from a file.
	MinAPITokenLen = 16
	// MinGCInterval is the shortest --gc-interval: a pass costs little
	// when nothing is due, but a shorter period buys nothing.
	MinGCInterval = time.Second
	// MinMemTableBytes is the smallest --memtable-bytes: smaller memtables
	// flush so often that compaction takes over the disk.
	MinMemTableBytes = 1 << 20
	// MaxMemTableBytes is the largest --memtable-bytes (persist's bound:
	// Badger's memtable arena is addressed by 32-bit offsets).
	MaxMemTableBytes = persist.MaxMemTableSize
)

// Config is the daemon's configuration. Start from DefaultConfig; Load fills
// it from flags, environment and a file.
type Config struct {
	// DataDir holds the identity key (identity.key) and the store (in
	// the subdirectory node.StoreDir).
	DataDir string
	// Listen are the libp2p listen multiaddrs. Default DefaultListen.
	Listen []string
	// Bootstrap are peers to dial, multiaddrs ending in /p2p/<id>.
	Bootstrap []string
	// Mesh names the mesh; peers of different meshes ignore each other.
	// Default transport.DefaultMesh.
	Mesh string
	// PSKFile is a pre-shared key in the libp2p format
	// (/key/swarm/psk/1.0.0/, as `sessionmesh keygen psk` writes it): only
	// peers with the same key can connect. Optional.
	PSKFile string
	// AllowedPeers, when set, are the only peer ids allowed in the mesh.
	AllowedPeers []string
	// Region labels this peer for operators (shown by /v1/peers on every
	// peer). Optional.
	Region string
	// Replicas is how many peers of each region hold each session
	// (docs/partial-replication.md); 0, written "all", means every peer
	// holds every session (the default). node.Config.Replicas.
	Replicas int
	// Durability of acknowledged writes: sync, group or none.
	Durability persist.Durability
	// Compression of the store's tables: none (default), snappy or zstd
	// (persist.Options.Compression).
	Compression persist.Compression
	// CacheBytes bounds the store's cache of decoded sessions, which
	// serves reads in microseconds (persist.Options.CacheBytes); 0 turns
	// it off. Default persist's, 32 MiB.
	CacheBytes int64
	// MemTableBytes is the size of Badger's memtables
	// (persist.Options.MemTableSize). Default persist's, 4 MiB.
	MemTableBytes int64
	// EncryptionKeyFile turns on encryption at rest with the key it holds
	// (16, 24 or 32 bytes, hex-encoded or raw). Optional.
	EncryptionKeyFile string
	// IdleTimeout and Lifetime are the defaults for new sessions.
	IdleTimeout time.Duration
	Lifetime    time.Duration
	// GCInterval is the period of garbage collection of expired sessions
	// and tombstones (node.Config.GCInterval). Default 1m.
	GCInterval time.Duration
	// ConsistencyWait bounds how long a request carrying X-Session-Version
	// waits for this peer to reach it before 503 stale_session
	// (node.Config.ConsistencyWait). Default 200ms.
	ConsistencyWait time.Duration
	// LogLevel and LogFormat ("text" or "json") configure the logs, written
	// to standard error.
	LogLevel  slog.Level
	LogFormat string
	// HTTPAddr is the host:port of the HTTP API. Default DefaultHTTPAddr.
	HTTPAddr string
	// APITokenFile holds the bearer token that /v1/ and /metrics require.
	// Required when HTTPAddr is not a loopback address.
	APITokenFile string
	// ShutdownTimeout bounds each step of a graceful shutdown: requests in
	// flight, then flushing pending deltas.
	ShutdownTimeout time.Duration
	// MaxBodyBytes bounds an HTTP request body (413 beyond). Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RedisAddr, when set, is the host:port of the Redis-protocol front
	// (docs/redis.md). Off by default. Off loopback it requires
	// APITokenFile, whose token is then the AUTH password.
	RedisAddr string
	// RedisMaxClients bounds the front's open connections.
	RedisMaxClients int
	// RedisMaxRequestBytes bounds one Redis request.
	RedisMaxRequestBytes int
	// RedisIdleTimeout closes Redis clients silent for this long; 0 never.
	RedisIdleTimeout time.Duration
	// ReadyMinPeers, when positive, keeps /readyz at 503 while fewer
	// peers are connected. Default 0: a peer cut off from the others keeps
	// serving (its region stays in service); isolation is reported by
	// /v1/status, /v1/peers and the metrics instead.
	ReadyMinPeers int
	// FailureTimeout is how long a member may stay silent before it is
	// declared unreachable (transport.Config.FailureTimeout). Default
	// transport.DefaultFailureTimeout.
	FailureTimeout time.Duration
	// ForgetAfter is how long a member (not a bootstrap peer) may stay
	// unreachable before it is forgotten; negative: never
	// (transport.Config.ForgetAfter). Default transport.DefaultForgetAfter.
	ForgetAfter time.Duration
}

// DefaultConfig returns the configuration of `sessionmesh serve` without
// flags, environment or file.
func DefaultConfig() Config {
	return Config{
		DataDir:         DefaultDataDir,
		Listen:          []string{DefaultListen},
		Mesh:            transport.DefaultMesh,
		Durability:      persist.DurabilitySync,
		Compression:     persist.DefaultOptions("").Compression,
		CacheBytes:      persist.DefaultOptions("").CacheBytes,
		MemTableBytes:   persist.DefaultOptions("").MemTableSize,
		IdleTimeout:     30 * time.Minute,
		Lifetime:        12 * time.Hour,
		GCInterval:      node.DefaultConfig().GCInterval,
		ConsistencyWait: node.DefaultConfig().ConsistencyWait,
		LogLevel:        slog.LevelInfo,
		LogFormat:       "text",
		HTTPAddr:        DefaultHTTPAddr,
		ShutdownTimeout: 10 * time.Second,
		MaxBodyBytes:    DefaultMaxBodyBytes,

		RedisMaxClients:      redisfront.DefaultMaxClients,
		RedisMaxRequestBytes: redisfront.DefaultMaxRequestBytes,
		RedisIdleTimeout:     redisfront.DefaultIdleTimeout,
		FailureTimeout:       transport.DefaultFailureTimeout,
		ForgetAfter:          transport.DefaultForgetAfter,
	}
}

// Validate checks the settings against each other without reading any
// file: Run reads the key files.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.DataDir == "":
		return bad("data directory must not be empty")
	case len(c.Listen) == 0:
		return bad("at least one listen address is needed")
	case c.IdleTimeout <= 0 || c.Lifetime <= 0:
		return bad("idle timeout and lifetime must be positive")
	case c.ConsistencyWait <= 0 || c.ConsistencyWait > time.Minute:
		return bad("consistency wait %v: want more than 0 and at most 1m", c.ConsistencyWait)
	case c.Replicas < 0:
		return bad("replicas %d: want all or a positive number of peers per region", c.Replicas)
	case c.GCInterval < MinGCInterval:
		return bad("gc interval %v: want at least %v", c.GCInterval, MinGCInterval)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return bad("log format %q: want text or json", c.LogFormat)
	case c.ShutdownTimeout <= 0:
		return bad("shutdown timeout must be positive")
	case c.MaxBodyBytes <= 0:
		return bad("max body bytes must be positive")
	case c.RedisMaxClients <= 0:
		return bad("redis max clients must be positive")
	case c.RedisMaxRequestBytes <= 0:
		return bad("redis max request bytes must be positive")
	case c.RedisIdleTimeout < 0:
		return bad("redis idle timeout must not be negative")
	case c.ReadyMinPeers < 0:
		return bad("ready min peers must not be negative")
	case c.CacheBytes < 0:
		return bad("cache bytes must not be negative")
	case c.MemTableBytes < MinMemTableBytes:
		return bad("memtable bytes %d: want at least %d", c.MemTableBytes, MinMemTableBytes)
	case c.MemTableBytes > MaxMemTableBytes:
		return bad("memtable bytes %d: want at most %d (1GiB)", c.MemTableBytes, int64(MaxMemTableBytes))
	}
	if _, err := persist.ParseCompression(c.Compression.String()); err != nil {
		return bad("%v", err)
	}
	if _, err := persist.ParseDurability(c.Durability.String()); err != nil {
		return bad("%v", err)
	}
	for _, id := range c.AllowedPeers {
		if _, err := peer.Decode(id); err != nil {
			return bad("allowed peer %q: %v", id, err)
		}
	}
	loopback, err := IsLoopback(c.HTTPAddr)
	if err != nil {
		return bad("http address %q: %v", c.HTTPAddr, err)
	}
	if !loopback && c.APITokenFile == "" {
		return bad("http address %s is not a loopback address: set an API token file (--api-token-file) so that the API is not open to the network", c.HTTPAddr)
	}
	if c.RedisAddr != "" {
		loopback, err := IsLoopback(c.RedisAddr)
		if err != nil {
			return bad("redis address %q: %v", c.RedisAddr, err)
		}
		if !loopback && c.APITokenFile == "" {
			return bad("redis address %s is not a loopback address: set an API token file (--api-token-file), whose token becomes the AUTH password", c.RedisAddr)
		}
	}
	tc, err := c.transportConfig(nil)
	if err != nil {
		return err
	}
	if err := tc.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// transportConfig returns the libp2p settings, with the pre-shared key
// given (Validate passes none).
func (c Config) transportConfig(psk []byte) (transport.Config, error) {
	tc := transport.DefaultConfig()
	tc.DataDir = c.DataDir
	tc.ListenAddrs = append([]string(nil), c.Listen...)
	tc.Bootstrap = append([]string(nil), c.Bootstrap...)
	tc.Mesh = c.Mesh
	tc.Region = c.Region
	tc.PSK = psk
	tc.FailureTimeout = c.FailureTimeout
	tc.ForgetAfter = c.ForgetAfter
	for _, s := range c.AllowedPeers {
		id, err := peer.Decode(s)
		if err != nil {
			return tc, fmt.Errorf("%w: allowed peer %q: %v", ErrConfig, s, err)
		}
		tc.AllowedPeers = append(tc.AllowedPeers, id)
	}
	return tc, nil
}

// IsLoopback reports whether the host of a host:port address is a loopback
// address ("localhost", 127.0.0.0/8 or ::1). An empty host means every
// interface, which is not loopback.
func IsLoopback(hostport string) (bool, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return false, fmt.Errorf("bad port %q", port)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
