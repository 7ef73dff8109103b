package persist

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Durability says when Apply returns relative to the disk.
type Durability int

const (
	// DurabilitySync returns from Apply once the write is fsynced: an
	// acknowledged write survives a process crash and a power loss. Apply
	// calls that arrive while a commit is in progress are merged into the
	// next transaction and share its fsync.
	DurabilitySync Durability = iota
	// DurabilityGroup is DurabilitySync that also waits up to GroupWindow
	// after a call arrives to gather more into its transaction: the same
	// guarantee, fewer fsyncs under load, up to GroupWindow more latency.
	DurabilityGroup
	// DurabilityNone returns from Apply once the write is in the operating
	// system's page cache: an acknowledged write survives a crash of the
	// process (kill -9), but a power loss or kernel crash may lose recent
	// writes. A background fsync every SyncInterval bounds how recent for
	// the current log (like Redis's appendfsync everysec); writes in a
	// memtable Badger has just switched away from stay unsynced until it is
	// flushed.
	DurabilityNone
)

// String returns the name used in configuration.
func (d Durability) String() string {
	switch d {
	case DurabilitySync:
		return "sync"
	case DurabilityGroup:
		return "group"
	case DurabilityNone:
		return "none"
	}
	return fmt.Sprintf("Durability(%d)", int(d))
}

// ParseDurability parses "sync", "group" or "none".
func ParseDurability(s string) (Durability, error) {
	for _, d := range []Durability{DurabilitySync, DurabilityGroup, DurabilityNone} {
		if d.String() == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("persist: unknown durability %q (want sync, group or none)", s)
}

// Compression chooses how Badger compresses its tables.
type Compression int

const (
	// CompressionNone stores tables as they are: no block cache is needed,
	// reads come straight from the tables' pages, and a table being built
	// takes half the memory of a compressed one (Badger keeps a block's
	// plain and compressed copies until the table is written).
	CompressionNone Compression = iota
	// CompressionSnappy is Badger's default: cheap, but it finds little to
	// take out of session values, which are mostly random tokens.
	CompressionSnappy
	// CompressionZSTD compresses more, for more CPU in flushes and
	// compactions.
	CompressionZSTD
)

// String returns the name used in configuration.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionSnappy:
		return "snappy"
	case CompressionZSTD:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression parses "none", "snappy" or "zstd".
func ParseCompression(s string) (Compression, error) {
	for _, c := range []Compression{CompressionNone, CompressionSnappy, CompressionZSTD} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("persist: unknown compression %q (want none, snappy or zstd)", s)
}

// Options configure a Store. Start from DefaultOptions or InMemoryOptions.
type Options struct {
	// Dir is the data directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory (tests and the simulator).
	InMemory bool
	// Durability chooses when Apply returns; default DurabilitySync.
	Durability Durability
	// GroupWindow is how long DurabilityGroup gathers writes into one
	// transaction. Default 2ms.
	GroupWindow time.Duration
	// Serial says that Apply calls never overlap (one caller, such as the
	// simulator, which runs every node on one goroutine): each call then
	// commits by itself in the caller, without the group-commit queue and
	// its hand-over between goroutines, which would be pure overhead.
	// Calls that do overlap are still correct, committed one at a time
	// and never grouped. Incompatible with DurabilityGroup.
	Serial bool
	// SyncInterval is the period of DurabilityNone's background fsync.
	// Badger holds its memtable lock shared while it syncs, which stalls a
	// writer that needs a new memtable: syncing every few milliseconds
	// cost most of the write throughput. Default 1s.
	SyncInterval time.Duration
	// EncryptionKey turns on encryption at rest (AES, Badger's) with a key
	// of 16, 24 or 32 bytes. A store written with a key can only be opened
	// with the same key.
	EncryptionKey []byte
	// Limits bound every session stored; deltas beyond them are refused.
	Limits crdt.Limits
	// MaxDrift is the clock drift bound: deltas stamped further ahead are
	// deferred, and sessions are kept until their absolute deadline plus
	// MaxDrift. It must match the node's. Default 5s.
	MaxDrift time.Duration
	// CacheSessions is how many decoded sessions the read cache keeps at
	// most. Default 65536; 0 turns the cache off.
	CacheSessions int
	// CacheBytes bounds the memory of the read cache, estimated from the
	// decoded sessions' fields (a session of 10 fields of 90 bytes counts
	// about 2.5 KB): the cache keeps fewer sessions when they are large,
	// and none larger than CacheBytes/64. Default 32 MiB; 0 turns the
	// cache off.
	CacheBytes int64
	// GCInterval is the period of background garbage collection; 0 turns
	// it off (call CollectGarbage yourself). Default 30s.
	GCInterval time.Duration
	// ReclaimInterval is the period of Badger's value-log GC, which gives
	// back the disk space of large sessions (small ones are reclaimed by
	// compaction). It runs after every collection pass too; set it for a
	// store whose collection is driven from outside (the node does).
	// Default 5m; 0 turns it off.
	ReclaimInterval time.Duration
	// GCBatch bounds the sessions removed in one collection pass, so that a
	// pass never holds up writers for long. Default 10000.
	GCBatch int
	// MemTableSize is Badger's memtable size in bytes. Default 4 MiB: the
	// buffers Badger builds a table in grow to hold a whole memtable, and
	// it pools up to 8 of them (freed only after seconds without table
	// building), so this size drives the memory of a peer taking writes
	// more than the memtables themselves do. At 100k sessions, 4 MiB took
	// about 35 MB less than 8 MiB, for the same write throughput within
	// the noise of a shared machine. It is raised to about 7 times
	// Limits.MaxSessionBytes if smaller, so that every session record
	// stays out of the value log (package doc).
	MemTableSize int64
	// BaseTableSize is the size of Badger's tables at the base level (each
	// deeper level doubles it); a compaction builds several tables at once,
	// each in a buffer of twice this size. Default 1 MiB.
	BaseTableSize int64
	// ValueLogFileSize is the size of each of Badger's value-log files,
	// which Badger preallocates (sparsely) at twice this size. Session
	// records stay in the LSM tree (see MemTableSize), so the value log
	// holds little but its header; Badger's own default, 1 GiB, showed as a
	// 2 GiB file in every data directory. It is raised to twice
	// Limits.MaxSessionBytes if smaller: Badger refuses a value larger
	// than a value-log file. Default 32 MiB.
	ValueLogFileSize int64
	// Compression of Badger's tables. Default CompressionNone: with
	// session values that are mostly random tokens, Snappy saved about a
	// sixth of the disk and cost twice the memory of every table being
	// built, plus a block cache for the decompressed blocks.
	Compression Compression
	// BlockCacheSize is Badger's cache of decompressed (or decrypted)
	// blocks in bytes. Badger requires one when Compression is on or an
	// EncryptionKey is set, and uses none otherwise. Default 0; a store
	// that compresses or encrypts gets 8 MiB if it is left at 0. The
	// store's own read cache (CacheBytes) keeps hot sessions decoded, so
	// this one only serves misses.
	BlockCacheSize int64
	// NumMemtables is how many memtables Badger keeps, the one taking
	// writes included: each costs MemTableSize of memory and of log file.
	// Default 3: the one taking writes, one being flushed, one spare so
	// that a burst of writes does not wait for a flush.
	NumMemtables int
	// TableReleaseInterval is the period at which the store drops its
	// mappings of the pages of Badger's tables (Linux; no-op elsewhere).
	// Badger writes and reads its tables through shared memory mappings,
	// so every table page written or read stays in the process's resident
	// set (RssFile) until the kernel needs it, and so does much around
	// it: a read fault maps the whole page-cache folio it hits, which
	// recent kernels make up to megabytes large, so that on one test
	// machine 2,000 random reads of a store of 100k sessions mapped all
	// of its tables. A store of 1M sessions showed about 1.2 GB resident
	// that way. Released pages stay in the
	// kernel's page cache (evictable, no longer counted in the process's
	// RSS or its OOM score) and a later read maps them again without
	// going to the disk while they are cached, as a store reading with
	// pread would. A pass costs about half a millisecond with 35 tables
	// (BenchmarkReleaseTablePages), more with more tables: a store of many
	// tables spaces its passes further apart (1 ms per table), so that they
	// take about 1% of a core besides the pages they release. What stays resident is what flushes,
	// compactions and reads touched since the last pass. Default 100ms;
	// 0 leaves them mapped.
	TableReleaseInterval time.Duration
	// Now is the clock used by background garbage collection only; the
	// simulator replaces it. Default time.Now.
	Now func() time.Time
	// Logger receives the store's and Badger's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultOptions returns options for a store on disk in dir.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:                  dir,
		Durability:           DurabilitySync,
		GroupWindow:          2 * time.Millisecond,
		SyncInterval:         time.Second,
		Limits:               crdt.DefaultLimits(),
		MaxDrift:             5 * time.Second,
		CacheSessions:        1 << 16,
		CacheBytes:           32 << 20,
		GCInterval:           30 * time.Second,
		ReclaimInterval:      5 * time.Minute,
		GCBatch:              10_000,
		MemTableSize:         4 << 20,
		BaseTableSize:        1 << 20,
		ValueLogFileSize:     32 << 20,
		Compression:          CompressionNone,
		NumMemtables:         3,
		TableReleaseInterval: 100 * time.Millisecond,
		Now:                  time.Now,
		Logger:               slog.Default(),
	}
}

// InMemoryOptions returns options for a store that lives in memory only.
func InMemoryOptions() Options {
	o := DefaultOptions("")
	o.InMemory = true
	return o
}

// Validate checks the options against each other.
func (o Options) Validate() error {
	switch {
	case !o.InMemory && o.Dir == "":
		return fmt.Errorf("persist: options: Dir is empty and InMemory is off")
	case o.Durability < DurabilitySync || o.Durability > DurabilityNone:
		return fmt.Errorf("persist: options: unknown durability %d", o.Durability)
	case o.Durability == DurabilityGroup && o.GroupWindow <= 0:
		return fmt.Errorf("persist: options: durability %s needs a positive GroupWindow", o.Durability)
	case o.Durability == DurabilityGroup && o.Serial:
		return fmt.Errorf("persist: options: durability %s gathers overlapping Apply calls, Serial has none", o.Durability)
	case o.Durability == DurabilityNone && o.SyncInterval <= 0:
		return fmt.Errorf("persist: options: durability %s needs a positive SyncInterval", o.Durability)
	case o.EncryptionKey != nil && len(o.EncryptionKey) != 16 && len(o.EncryptionKey) != 24 && len(o.EncryptionKey) != 32:
		return fmt.Errorf("%w: key of %d bytes, want 16, 24 or 32", ErrBadKey, len(o.EncryptionKey))
	case o.MaxDrift < 0:
		return fmt.Errorf("persist: options: negative MaxDrift")
	case o.CacheSessions < 0 || o.CacheBytes < 0:
		return fmt.Errorf("persist: options: negative CacheSessions or CacheBytes")
	case o.ReclaimInterval < 0:
		return fmt.Errorf("persist: options: negative ReclaimInterval")
	case o.GCInterval < 0 || (o.GCInterval > 0 && o.GCBatch <= 0):
		return fmt.Errorf("persist: options: GCInterval needs a positive GCBatch")
	case o.MemTableSize < 1<<20:
		return fmt.Errorf("persist: options: MemTableSize below 1 MiB")
	case o.MemTableSize > MaxMemTableSize:
		return fmt.Errorf("persist: options: MemTableSize %d above %d", o.MemTableSize, int64(MaxMemTableSize))
	case o.BaseTableSize < 64<<10:
		return fmt.Errorf("persist: options: BaseTableSize below 64 KiB")
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return fmt.Errorf("persist: options: ValueLogFileSize %d outside [1 MiB, 2 GiB)", o.ValueLogFileSize)
	case o.Compression < CompressionNone || o.Compression > CompressionZSTD:
		return fmt.Errorf("persist: options: unknown compression %d", o.Compression)
	case o.BlockCacheSize < 0:
		return fmt.Errorf("persist: options: negative BlockCacheSize")
	case o.NumMemtables < 1:
		return fmt.Errorf("persist: options: NumMemtables below 1")
	case o.TableReleaseInterval < 0:
		return fmt.Errorf("persist: options: negative TableReleaseInterval")
	case o.Now == nil || o.Logger == nil:
		return fmt.Errorf("persist: options: Now and Logger must be set")
	}
	return o.Limits.Validate()
}

// MaxMemTableSize is the largest Options.MemTableSize. Badger's memtable
// is a skiplist in one arena addressed by 32-bit offsets, sized the
// memtable plus 15% for a batch and room for its nodes, and its log file
// is twice the memtable: past about 3.5 GiB the offsets wrap around (a
// store that accepts it corrupts its memtable once that much is written).
// 1 GiB keeps well clear of it, and is 256 times the default.
const MaxMemTableSize = 1 << 30
