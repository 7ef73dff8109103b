package persist

import (
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/sessionmesh/sessionmesh/crdt"
)

const cacheShards = 64

// cache holds decoded sessions, each with its hash and encoded size.
// Entries are immutable once stored: readers get them without copying.
//
// The committer is the only writer of the store, and it puts every state it
// commits here (replacing the entry), so an entry is always the latest
// committed state and the committer merges into it without reading the
// backend. Readers that miss fill the cache only where no entry appeared
// meanwhile and no eviction or removal happened since their read began:
// otherwise what they read may be older than what the committer left.
type cache struct {
	shards   [cacheShards]cacheShard
	perShard int
	// shardBytes bounds the estimated memory (entryCost) of a shard's
	// entries, so that the cache's size does not grow with session size.
	shardBytes int64
}

type cacheEntry struct {
	s    *crdt.Session
	hash uint64 // sessionHash(s)
	size int    // crdt.EncodedSize(s)
}

func newEntry(s *crdt.Session) cacheEntry {
	return cacheEntry{s: s, hash: sessionHash(s), size: crdt.EncodedSize(s)}
}

// cost estimates the heap bytes a decoded session takes: the struct, its
// id and the map slot that holds it (176 bytes), and its registers
// (crdt.Fields.MemSize: one packed allocation of 24 bytes per field plus
// keys and values, and a small overlay after writes). A session of 10
// fields of 90 bytes costs about 1.4 KB.
func (e cacheEntry) cost() int64 {
	return int64(176 + len(e.s.ID) + e.s.Fields.MemSize())
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cachedEntry
	// gen counts evictions and removals; see fill.
	gen uint64
	// bytes is the sum of the entries' costs.
	bytes int64
}

type cachedEntry struct {
	cacheEntry
	cost int64
}

func newCache(size int, maxBytes int64) *cache {
	if size <= 0 || maxBytes <= 0 {
		return nil
	}
	c := &cache{perShard: max(1, size/cacheShards), shardBytes: max(1, maxBytes/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cachedEntry)
	}
	return c
}

func (c *cache) shard(id string) *cacheShard {
	return &c.shards[xxhash.Sum64String(id)%cacheShards]
}

func (c *cache) get(id string) *crdt.Session {
	e, _ := c.entry(id)
	return e.s
}

func (c *cache) entry(id string) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	sh := c.shard(id)
	sh.mu.RLock()
	e, ok := sh.m[id]
	sh.mu.RUnlock()
	return e.cacheEntry, ok
}

// generation returns the generation of id's shard, for fill.
func (c *cache) generation(id string) uint64 {
	if c == nil {
		return 0
	}
	sh := c.shard(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.gen
}

// fill caches e, read from the backend when the shard was at generation
// gen, unless an entry exists or an entry was evicted or removed since. It
// returns the cached state (an existing entry is at least as new as e), or
// nil if e was not cached.
func (c *cache) fill(e cacheEntry, gen uint64) *crdt.Session {
	if c == nil {
		return nil
	}
	s := e.s
	sh := c.shard(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[s.ID]; ok {
		return e.s
	}
	if sh.gen != gen {
		return nil
	}
	if !sh.insertLocked(e, c.perShard, c.shardBytes) {
		return nil
	}
	return s
}

// put records the state the committer just committed. Only the committer
// calls it.
func (c *cache) put(e cacheEntry) {
	if c == nil {
		return
	}
	sh := c.shard(e.s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.insertLocked(e, c.perShard, c.shardBytes)
}

// insertLocked stores e, evicting entries to stay within perShard entries
// and maxBytes of estimated memory. A session too big for the shard is not
// stored, and an older entry for it is removed (the committer relies on a
// cached entry being the latest state): insertLocked reports whether e was
// stored.
func (sh *cacheShard) insertLocked(e cacheEntry, perShard int, maxBytes int64) bool {
	ce := cachedEntry{cacheEntry: e, cost: e.cost()}
	if old, ok := sh.m[e.s.ID]; ok {
		sh.bytes -= old.cost
		delete(sh.m, e.s.ID)
		if ce.cost > maxBytes {
			sh.gen++
			return false
		}
	} else if ce.cost > maxBytes {
		return false
	}
	for len(sh.m) > 0 && (len(sh.m) >= perShard || sh.bytes+ce.cost > maxBytes) {
		// Evict an arbitrary entry: map iteration order is random, which
		// is cheap and keeps hot sessions in the cache most of the time.
		for k, old := range sh.m {
			delete(sh.m, k)
			sh.bytes -= old.cost
			sh.gen++
			break
		}
	}
	sh.m[e.s.ID] = ce
	sh.bytes += ce.cost
	return true
}

func (c *cache) remove(id string) {
	if c == nil {
		return
	}
	sh := c.shard(id)
	sh.mu.Lock()
	if old, ok := sh.m[id]; ok {
		sh.bytes -= old.cost
		delete(sh.m, id)
	}
	sh.gen++
	sh.mu.Unlock()
}
