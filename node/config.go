package node

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Clock gives the node its physical time. The simulator passes a virtual
// one.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// WallClock is the real clock, the default.
var WallClock Clock = wallClock{}

// Config configures a node. Start from DefaultConfig.
type Config struct {
	// DataDir holds the store and the peer identity; "" keeps everything
	// in memory (tests).
	DataDir string
	// Durability of acknowledged writes; see persist.Durability.
	Durability persist.Durability
	// EncryptionKey turns on encryption at rest (16, 24 or 32 bytes).
	EncryptionKey []byte
	// StoreOptions, when set, tunes the store Open creates: it is called
	// with persist's defaults (persist.DefaultOptions, or InMemoryOptions
	// without a DataDir) and may change the storage settings that have no
	// Config field of their own, such as Compression, CacheBytes,
	// MemTableSize or TableReleaseInterval. What the node derives from
	// Config (Dir, InMemory, Durability, EncryptionKey, Limits, MaxDrift,
	// Logger) and GCInterval, which the node drives, are set after it.
	StoreOptions func(*persist.Options)

	// IdleTimeout and AbsoluteLifetime are the defaults for new sessions.
	IdleTimeout      time.Duration
	AbsoluteLifetime time.Duration
	// MaxDrift bounds how far ahead of local time a remote timestamp may
	// be before it is deferred. All peers should agree on it.
	MaxDrift time.Duration
	// TouchFraction: a touch that moves last access by less than this
	// fraction of the idle timeout stays local (not stored, not sent), so
	// page views do not all become broadcasts. Peers may then disagree on a
	// session's idle expiry by up to TouchFraction × IdleTimeout.
	TouchFraction float64
	// MaxFields bounds the fields of a session for local writes, below
	// Limits.MaxFields so that concurrent writers stay under that bound.
	MaxFields int
	// Limits bound what the node accepts from the network and stores.
	Limits crdt.Limits

	// ConsistencyWait bounds how long a call made with a version
	// (WithVersion) waits for this peer's copy of the session to reach
	// it before failing with ErrStale; ConsistencyFetchAfter is how long
	// it waits for replication alone before asking the peers that wrote
	// the session for it.
	ConsistencyWait       time.Duration
	ConsistencyFetchAfter time.Duration

	// Region names where this peer runs; owner listings show it for the
	// sessions created here (OwnedSession).
	Region string
	// OwnerKey, when set, keys the hash under which owner ids are stored
	// and replicated (HMAC-SHA-256), so that a copy of the data cannot be
	// checked against a list of user ids. Every peer of a mesh must use
	// the same key (the daemon derives it from the pre-shared key when
	// there is one); changing it orphans the existing owner records.
	OwnerKey []byte

	// Replicas is how many peers of each region hold each session
	// (docs/partial-replication.md); 0 means every peer holds every
	// session, the default. Every peer of a mesh should use the same
	// value.
	Replicas int
	// HolderGrace is how long a peer that went down still counts as a
	// holder, so that a restart or a short cut does not move its slots.
	HolderGrace time.Duration
	// HandoffInterval is the period at which a peer hands the sessions it
	// stores in slots it does not hold to their holders.
	HandoffInterval time.Duration

	// FlushDelay is the least time between two broadcast batches of local
	// deltas (from the node's start), and so the longest a delta waits to
	// be batched with others: one that comes FlushDelay or more after the
	// last batch leaves at once. FlushBytes flushes earlier.
	FlushDelay time.Duration
	FlushBytes int
	// SyncInterval is the period of anti-entropy rounds (one random peer
	// each); a round also starts on every new connection. The periodic
	// rounds leave to gossip the buckets that changed here within the last
	// SyncInterval/10 (at most 1 s), writes most likely in flight, each
	// for at most one SyncInterval per peer; a new connection's round
	// compares every bucket.
	SyncInterval time.Duration
	// SyncTimeout abandons a round that stalls.
	SyncTimeout time.Duration
	// MaxConcurrentSyncs bounds rounds in progress, both directions.
	MaxConcurrentSyncs int
	// SyncChunkBytes bounds one anti-entropy message.
	SyncChunkBytes int
	// GCInterval and GCBatch drive garbage collection of expired sessions.
	GCInterval time.Duration
	GCBatch    int
	// MaxDeferred bounds deltas kept for later because of clock drift;
	// beyond it they are dropped and anti-entropy brings them back.
	MaxDeferred int

	// Clock is the physical clock (default WallClock); Rand the source of
	// tokens and of the seed for peer choice (default crypto/rand).
	Clock Clock
	Rand  io.Reader
	// Logger (default slog.Default()) and Metrics (default none).
	Logger  *slog.Logger
	Metrics Metrics

	// Dial builds the node's network (required): p2pnode.Open sets it to
	// libp2p; tests and the simulator pass their own.
	Dial Dialer
}

// DefaultConfig returns a configuration for a peer in memory with the
// defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		Durability:            persist.DurabilitySync,
		IdleTimeout:           30 * time.Minute,
		AbsoluteLifetime:      12 * time.Hour,
		MaxDrift:              5 * time.Second,
		TouchFraction:         0.1,
		MaxFields:             256,
		Limits:                crdt.DefaultLimits(),
		ConsistencyWait:       200 * time.Millisecond,
		ConsistencyFetchAfter: 20 * time.Millisecond,
		HolderGrace:           30 * time.Second,
		HandoffInterval:       2 * time.Second,
		FlushDelay:            2 * time.Millisecond,
		FlushBytes:            64 << 10,
		SyncInterval:          10 * time.Second,
		SyncTimeout:           30 * time.Second,
		MaxConcurrentSyncs:    4,
		SyncChunkBytes:        256 << 10,
		GCInterval:            time.Minute,
		GCBatch:               10_000,
		MaxDeferred:           10_000,
		Clock:                 WallClock,
		Rand:                  rand.Reader,
		Logger:                slog.Default(),
		Metrics:               nopMetrics{},
	}
}

// Validate checks the configuration with clear errors.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("node: config: "+format, args...)
	}
	switch {
	case c.IdleTimeout <= 0 || c.AbsoluteLifetime <= 0:
		return bad("IdleTimeout and AbsoluteLifetime must be positive")
	case c.MaxDrift < 0:
		return bad("MaxDrift must not be negative")
	case c.TouchFraction < 0 || c.TouchFraction >= 1:
		return bad("TouchFraction must be in [0, 1), got %v", c.TouchFraction)
	case c.MaxFields <= 0 || c.MaxFields > c.Limits.MaxFields:
		return bad("MaxFields must be in [1, Limits.MaxFields=%d], got %d", c.Limits.MaxFields, c.MaxFields)
	case c.ConsistencyWait <= 0 || c.ConsistencyFetchAfter < 0 || c.ConsistencyFetchAfter > c.ConsistencyWait:
		return bad("ConsistencyWait must be positive and ConsistencyFetchAfter in [0, ConsistencyWait]")
	case c.FlushDelay < 0 || c.FlushBytes <= 0:
		return bad("FlushDelay must not be negative and FlushBytes must be positive")
	case c.FlushBytes > c.Limits.MaxBatchBytes/2:
		return bad("FlushBytes %d leaves no headroom under Limits.MaxBatchBytes %d", c.FlushBytes, c.Limits.MaxBatchBytes)
	case c.SyncInterval <= 0 || c.SyncTimeout <= 0 || c.MaxConcurrentSyncs <= 0:
		return bad("SyncInterval, SyncTimeout and MaxConcurrentSyncs must be positive")
	case c.SyncChunkBytes <= 0 || c.SyncChunkBytes > c.Limits.MaxBatchBytes/2:
		return bad("SyncChunkBytes must be in (0, Limits.MaxBatchBytes/2]")
	case c.GCInterval <= 0 || c.GCBatch <= 0:
		return bad("GCInterval and GCBatch must be positive")
	case c.Replicas < 0:
		return bad("Replicas must be 0 (every peer holds every session) or positive, got %d", c.Replicas)
	case c.Replicas > 0 && (c.HolderGrace < 0 || c.HandoffInterval <= 0):
		return bad("with Replicas, HolderGrace must not be negative and HandoffInterval must be positive")
	case c.MaxDeferred < 0:
		return bad("MaxDeferred must not be negative")
	case c.Clock == nil || c.Rand == nil || c.Logger == nil || c.Metrics == nil:
		return bad("Clock, Rand, Logger and Metrics must be set")
	}
	if c.Dial == nil {
		return bad("Dial must be set (p2pnode.Open opens a node over libp2p)")
	}
	return c.Limits.Validate()
}
