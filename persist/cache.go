package persist

import (
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/sessionmesh/sessionmesh/crdt"
)

const cacheShards = 64

// cache holds decoded sessions for the read path. Entries are immutable once
// stored: readers get them without copying. An update joins the new state
// into the cached one instead of overwriting it, so updates that reach the
// cache out of order (two commits racing, or a slow miss fill) still leave
// the latest state: the join is order-insensitive.
type cache struct {
	shards   [cacheShards]cacheShard
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*crdt.Session
	// gen counts evictions and removals. A miss fill takes it before
	// reading the store and is dropped if it moved: the state it read may
	// be older than one that was cached and has since gone.
	gen uint64
}

func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	c := &cache{perShard: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*crdt.Session)
	}
	return c
}

func (c *cache) shard(id string) *cacheShard {
	return &c.shards[xxhash.Sum64String(id)%cacheShards]
}

func (c *cache) get(id string) *crdt.Session {
	if c == nil {
		return nil
	}
	sh := c.shard(id)
	sh.mu.RLock()
	s := sh.m[id]
	sh.mu.RUnlock()
	return s
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

// fill caches s, read from the store when the shard was at generation gen,
// unless an entry was evicted or removed since. It returns the cached entry
// (which may be newer than s), or nil if s was not cached.
func (c *cache) fill(s *crdt.Session, gen uint64) *crdt.Session {
	if c == nil {
		return nil
	}
	sh := c.shard(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen {
		return nil
	}
	return sh.joinLocked(s, c.perShard)
}

// join merges s, which the cache takes ownership of, into the cached entry.
func (c *cache) join(s *crdt.Session) {
	if c == nil {
		return
	}
	sh := c.shard(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.joinLocked(s, c.perShard)
}

func (sh *cacheShard) joinLocked(s *crdt.Session, perShard int) *crdt.Session {
	if cur, ok := sh.m[s.ID]; ok {
		merged := cur.Clone()
		_, _ = merged.Merge(s) // same id
		sh.m[s.ID] = merged
		return merged
	}
	if len(sh.m) >= perShard {
		// Evict an arbitrary entry: map iteration order is random, which
		// is cheap and keeps hot sessions in the cache most of the time.
		for k := range sh.m {
			delete(sh.m, k)
			sh.gen++
			break
		}
	}
	sh.m[s.ID] = s
	return s
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
