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
}

type cacheEntry struct {
	s    *crdt.Session
	hash uint64 // sessionHash(s)
	size int    // crdt.EncodedSize(s)
}

func newEntry(s *crdt.Session) cacheEntry {
	return cacheEntry{s: s, hash: sessionHash(s), size: crdt.EncodedSize(s)}
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]cacheEntry
	// gen counts evictions and removals; see fill.
	gen uint64
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	c := &cache{perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]cacheEntry)
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
	return e, ok
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
	sh.insertLocked(e, c.perShard)
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
	sh.insertLocked(e, c.perShard)
}

func (sh *cacheShard) insertLocked(e cacheEntry, perShard int) {
	if _, ok := sh.m[e.s.ID]; !ok && len(sh.m) >= perShard {
		// Evict an arbitrary entry: map iteration order is random, which
		// is cheap and keeps hot sessions in the cache most of the time.
		for k := range sh.m {
			delete(sh.m, k)
			sh.gen++
			break
		}
	}
	sh.m[e.s.ID] = e
}

func (c *cache) remove(id string) {
	if c == nil {
		return
	}
	sh := c.shard(id)
	sh.mu.Lock()
	delete(sh.m, id)
	sh.gen++
	sh.mu.Unlock()
}
