package persist

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Store is the durable replica: every session this peer holds, with bucket
// digests for anti-entropy and a read cache. It is safe for concurrent use:
// readers take no lock of the writer's, and concurrent Apply calls are
// committed in groups by one writer at a time (committer).
type Store struct {
	opts    Options
	be      backend
	log     *slog.Logger
	cache   *cache
	digests digests
	commit  committer
	dirty   atomic.Bool // DurabilityNone on disk: committed since the last fsync

	// life lets Close wait for the calls in progress: each public call
	// holds it shared, Close takes it exclusively once closing is set.
	life      sync.RWMutex
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// storageLimits decode what this store wrote earlier. They are far wider
// than the configured Limits, which bound what is written, so that lowering
// a limit never makes existing records unreadable.
var storageLimits = crdt.Limits{
	MaxIDBytes: 1 << 16, MaxKeyBytes: 1 << 16, MaxValueBytes: 1 << 30, MaxFields: 1 << 20,
	MaxBatchSessions: 1, MaxBatchBytes: 1 << 30, MaxSessionBytes: 1 << 30, MaxLifetime: 1 << 62,
}

// enter registers a public call; it reports false once Close has begun.
func (s *Store) enter() bool {
	s.life.RLock()
	if s.closing.Load() {
		s.life.RUnlock()
		return false
	}
	return true
}

func (s *Store) leave() { s.life.RUnlock() }

// Open opens or creates the store described by o. A directory holding
// anything but a sessionmesh store fails with ErrForeign, unreadable store
// files with ErrCorrupt, a wrong encryption key with ErrBadKey.
func Open(o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var be backend
	where := o.Dir
	if o.InMemory {
		where = "(in memory)"
		be = newMemBackend()
	} else {
		b, err := openBadger(o)
		if err != nil {
			return nil, err
		}
		be = b
	}
	s := &Store{
		opts:   o,
		be:     be,
		log:    o.Logger.With("component", "persist"),
		cache:  newCache(o.CacheSessions, o.CacheBytes),
		closed: make(chan struct{}),
	}
	s.commit.s = s
	if o.Durability == DurabilityGroup {
		s.commit.window = o.GroupWindow
	}
	if err := s.rebuildDigests(); err != nil {
		_ = be.close()
		return nil, fmt.Errorf("persist: open %s: %w", where, err)
	}
	if o.Durability == DurabilityNone && !o.InMemory {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.syncLoop() }()
	}
	if o.ReclaimInterval > 0 && !o.InMemory {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.reclaimLoop() }()
	}
	if o.TableReleaseInterval > 0 && !o.InMemory {
		// The scan above mapped every page of every table.
		if _, err := be.releasePages(); err != nil {
			s.log.Warn("releasing table pages failed", "err", err)
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.releaseLoop() }()
	}
	if o.GCInterval > 0 {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.gcLoop() }()
	}
	return s, nil
}

// rebuildDigests recomputes every bucket digest from the stored sessions.
// Digests live in memory only, so they can never disagree with the data
// after a crash. A session that cannot be read counts for nothing: peers
// will offer it again, and collection still removes it.
func (s *Store) rebuildDigests() error {
	return s.be.scanAll(func(x *crdt.Session) error {
		s.digests.update(BucketOf(x.ID), 0, sessionHash(x))
		return nil
	}, func(err error) { s.log.Error("unreadable session record", "err", err) })
}

// Close waits for the calls in progress, stops background work, fsyncs and
// closes the store. Further calls fail with ErrClosed.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.life.Lock() // every call in progress has returned
		s.life.Unlock()
		close(s.closed)
		s.wg.Wait()
		err = s.be.close()
		if err != nil {
			err = fmt.Errorf("persist: close: %w", err)
		}
	})
	return err
}

// Get returns the stored state of a session, tombstones included, or
// ErrNotFound. Hot sessions come from memory. The result is shared: do not
// modify it (Clone it first). Whether the session is visible is the
// caller's decision at its own time (crdt.Session.Visible).
//
// Get keeps no reference to id: a caller may pass a string over memory it
// reuses once Get returns.
func (s *Store) Get(id string) (*crdt.Session, error) {
	// A hit takes no lock: cache entries never change, and the cache
	// outlives Close, so a hit racing Close returns a state that was
	// current when Close began.
	if !s.closing.Load() {
		if c := s.cache.get(id); c != nil {
			return c, nil
		}
	}
	return s.load(strings.Clone(id))
}

// load is Get past the cache.
func (s *Store) load(id string) (*crdt.Session, error) {
	if !s.enter() {
		return nil, ErrClosed
	}
	defer s.leave()
	if c := s.cache.get(id); c != nil {
		return c, nil
	}
	gen := s.cache.generation(id)
	out, err := s.read(id)
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if c := s.cache.fill(newEntry(out), gen); c != nil {
		return c, nil
	}
	return out, nil
}

// read loads a session from the backend, nil when absent.
func (s *Store) read(id string) (*crdt.Session, error) {
	out, err := s.be.load(id)
	if err != nil {
		return nil, fmt.Errorf("persist: read %q: %w", id, err)
	}
	if out != nil && out.ID != id {
		return nil, fmt.Errorf("persist: read %q: %w: record holds session %q", id, ErrCorrupt, out.ID)
	}
	return out, nil
}

// Len returns the number of sessions stored, tombstones included (those
// the digests count).
func (s *Store) Len() int { return int(s.digests.sessions.Load()) }

// Digests returns a snapshot of the bucket digests.
func (s *Store) Digests() *Digests {
	d := new(Digests)
	s.DigestsInto(d)
	return d
}

// DigestsInto writes a snapshot of the bucket digests into d: Digests
// without allocating 32 KiB, for a caller that takes snapshots often
// (every anti-entropy round).
func (s *Store) DigestsInto(d *Digests) { s.digests.snapshotInto(d) }

// Root returns Digests().Root without copying the buckets: what a peer
// compares first, at every anti-entropy round.
func (s *Store) Root() uint64 { return s.digests.root.Load() }

// Bucket calls fn with every session stored in bucket, ordered by id length
// then id, from one consistent snapshot. Sessions may be shared: do not
// modify them. An error from fn stops the iteration and is returned.
func (s *Store) Bucket(ctx context.Context, bucket int, fn func(*crdt.Session) error) error {
	return s.Buckets(ctx, []int{bucket}, fn)
}

// Buckets is Bucket for several buckets, visited in ascending order from
// one snapshot: cheaper than one call per bucket when a repair wants many.
// Buckets the digests show empty are skipped without reading the backend,
// so a session committed during the call but not yet in the digests may be
// missed there, as the digests miss it. Its cost follows the sessions
// stored, not what was written and collected before.
func (s *Store) Buckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error) error {
	sorted := slices.Clone(buckets)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, b := range sorted {
		if b < 0 || b >= Buckets {
			return fmt.Errorf("persist: bucket %d out of range [0, %d)", b, Buckets)
		}
	}
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	// Buckets known to be empty cost nothing: after heavy churn, finding
	// one empty in Badger means stepping over the dead records of what it
	// held. A session committed meanwhile is counted once published, as in
	// the digests, so a scan misses only what the digests do not describe.
	sorted = slices.DeleteFunc(sorted, func(b int) bool { return !s.digests.holds(b) })
	if len(sorted) == 0 {
		return ctx.Err()
	}
	return s.be.scanBuckets(ctx, sorted, fn, func(err error) {
		// Skip what cannot be read rather than stop every round.
		s.log.Error("unreadable session record", "err", err)
	})
}

// DiskUsage returns the bytes the store's files occupy on disk (allocated
// blocks: Badger preallocates its logs sparsely, so apparent sizes
// overstate it). It is 0 for a store in memory.
func (s *Store) DiskUsage() (int64, error) {
	if s.opts.InMemory {
		return 0, nil
	}
	return diskUsage(s.opts.Dir)
}
