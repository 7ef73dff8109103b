package persist

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"

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
//
// Readers take no lock: each shard is a hash table of immutable chains
// that writers replace (under the shard's mutex) with one atomic store, so
// a read never waits for a write and costs a few loads (see cacheTable).
type cache struct {
	shards   [cacheShards]cacheShard
	perShard int
	// shardBytes bounds the estimated memory (entryCost) of a shard's
	// entries, so that the cache's size does not grow with session size.
	shardBytes int64
	// seed keys the hash of ids, so that no one can choose ids that crowd
	// one chain.
	seed maphash.Seed
}

type cacheEntry struct {
	s    *crdt.Session
	hash uint64 // sessionHash(s)
	size int    // crdt.EncodedSize(s)
	// rec is the in-memory backend's record of the session, when known
	// (see memRecord); nil with other backends.
	rec *memRecord
}

func newEntry(s *crdt.Session) cacheEntry {
	return cacheEntry{s: s, hash: sessionHash(s), size: crdt.EncodedSize(s)}
}

// cost estimates the heap bytes a decoded session takes: the node that
// holds it, its id included, and its bucket (about 300 bytes), and its
// registers (crdt.Fields.MemSize: one packed allocation of 24 bytes per
// field plus keys and values, and a small overlay after writes). A session
// of 10 fields of 90 bytes costs about 1.4 KB.
func (e cacheEntry) cost() int64 {
	n := 300 + e.s.Fields.MemSize()
	if len(e.s.ID) > inlineID {
		n += len(e.s.ID)
	}
	return int64(n)
}

type cacheShard struct {
	// tab is what readers load; writers replace chains in it, or all of
	// it when it grows, holding mu.
	tab atomic.Pointer[cacheTable]
	mu  sync.Mutex
	// gen counts evictions and removals; see fill. Written under mu.
	gen atomic.Uint64
	// n is the number of entries, bytes the sum of their costs, and
	// sweep the bucket where the next eviction starts looking.
	n, sweep int
	bytes    int64
}

// cacheTable is a hash table of chains of immutable nodes: a writer
// replaces a bucket's chain by a new one (copying the nodes before the one
// it changes, sharing those after) with one atomic store, so a reader
// walks either the old chain or the new one, both consistent.
type cacheTable struct {
	buckets []atomic.Pointer[cacheNode] // a power of two
}

// cacheNode holds one entry: the id's key and, when it fits, the id itself
// (a session's does: node's ids are 43 bytes), then the state by value, so
// that a lookup compares the id and finds the state in the allocation it
// already reads, a few adjacent cache lines, rather than in two more.
// Readers get a pointer to the state in the node, which never changes.
//
// A node is 256 bytes, a size class whose objects start on a cache line:
// what a read touches (the key, the id, the state's header and where its
// registers are) then spans three lines rather than four. A node made for
// a session created, loaded or moved (its shard's table grew), whose
// registers are one packed base (crdt.Fields.PackedLen) that fits, has
// room for them after it (inlineNode), so that a read finds them in the
// allocation it has just read, not in one more elsewhere in memory. A
// write's node refers to the registers where they are (see
// insertNodeLocked).
type cacheNode struct {
	key   uint64 // the hash of the id
	idLen uint8  // noInlineID when the id does not fit id
	id    [inlineID]byte
	s     crdt.Session
	hash  uint64
	size  int
	cost  int64
	next  *cacheNode
	rec   *memRecord // cacheEntry.rec
	// inl says the state's registers lie in this node's allocation
	// (allocNode), as a read finds them best.
	inl bool
	_   [7]byte // to 256 bytes
}

// The node's size is the size class it fills.
var _ = [1]struct{}{}[unsafe.Sizeof(cacheNode{})-256]

const (
	inlineID   = 47 // the key, length and id fill the node's first line
	noInlineID = 0xff
	// maxInlineRegs is the most registers' bytes a node holds (a 4 KiB
	// object): a larger session's are apart, as they are built.
	maxInlineRegs = 4096 - 8 - 256
)

// inlineNode is a node with room for its state's packed registers.
type inlineNode[B any] struct {
	cacheNode
	regs B
}

// allocNode returns a new node and the room after it for size bytes of
// registers, 0 < size <= maxInlineRegs.
// The sizes fill size classes whose objects start on a cache line; above
// 512 bytes the allocator puts an 8-byte header before an object that
// holds pointers, and the node then starts 8 bytes into its first line,
// which still holds the whole of its key and id.
func allocNode(size int) (*cacheNode, []byte) {
	const n, h = 256, 8 + 256
	switch {
	case size <= 320-n:
		return inline[[320 - n]byte]()
	case size <= 384-n:
		return inline[[384 - n]byte]()
	case size <= 448-n:
		return inline[[448 - n]byte]()
	case size <= 512-n:
		return inline[[512 - n]byte]()
	case size <= 640-h:
		return inline[[640 - h]byte]()
	case size <= 768-h:
		return inline[[768 - h]byte]()
	case size <= 896-h:
		return inline[[896 - h]byte]()
	case size <= 1024-h:
		return inline[[1024 - h]byte]()
	case size <= 1152-h:
		return inline[[1152 - h]byte]()
	case size <= 1280-h:
		return inline[[1280 - h]byte]()
	case size <= 1408-h:
		return inline[[1408 - h]byte]()
	case size <= 1536-h:
		return inline[[1536 - h]byte]()
	case size <= 1792-h:
		return inline[[1792 - h]byte]()
	case size <= 2048-h:
		return inline[[2048 - h]byte]()
	case size <= 2304-h:
		return inline[[2304 - h]byte]()
	case size <= 2688-h:
		return inline[[2688 - h]byte]()
	case size <= 3072-h:
		return inline[[3072 - h]byte]()
	case size <= 3456-h:
		return inline[[3456 - h]byte]()
	}
	return inline[[maxInlineRegs]byte]()
}

func inline[B any]() (*cacheNode, []byte) {
	p := new(inlineNode[B])
	return &p.cacheNode, unsafe.Slice((*byte)(unsafe.Pointer(&p.regs)), unsafe.Sizeof(p.regs))
}

// newNode returns a node holding a copy of e's state, its registers in
// the node when they fit (allocNode).
func newNode(key uint64, e cachedEntry, next *cacheNode) *cacheNode {
	n := makeNode(e.s)
	n.key, n.hash, n.size, n.cost, n.next, n.rec = key, e.hash, e.size, e.cost, next, e.rec
	return n
}

// makeNode returns an unpublished node holding a copy of s, its registers
// in the node when they fit (inlines).
func makeNode(s *crdt.Session) *cacheNode {
	if size, ok := s.Fields.PackedLen(); ok && size > 0 && size <= maxInlineRegs {
		n, regs := allocNode(size)
		n.setState(s)
		n.s.Fields = s.Fields.CopyPacked(regs)
		n.inl = true
		return n
	}
	return newOwnedNode(s)
}

// newOwnedNode returns an unpublished node holding a copy of s, for the
// committer to merge into and then publish (cache.putNode).
func newOwnedNode(s *crdt.Session) *cacheNode {
	n := &cacheNode{}
	n.setState(s)
	return n
}

// setState makes n's state a copy of s, its id in n when it fits.
func (n *cacheNode) setState(s *crdt.Session) {
	n.idLen, n.s = noInlineID, *s
	if id := s.ID; len(id) <= inlineID {
		n.idLen = uint8(copy(n.id[:], id))
		n.rehome()
	}
}

// inlines reports whether newNode would keep the registers of n's state
// in the node it makes.
func (n *cacheNode) inlines() bool {
	size, ok := n.s.Fields.PackedLen()
	return ok && size > 0 && size <= maxInlineRegs
}

// rehome points the state's id at the node's copy of it, so that a cached
// session is two allocations (the node and its registers), not three.
// unsafe: the node never changes once published.
func (n *cacheNode) rehome() {
	if n.idLen != noInlineID {
		n.s.ID = unsafe.String(&n.id[0], int(n.idLen))
	}
}

func (n *cacheNode) entry() cachedEntry {
	return cachedEntry{cacheEntry: cacheEntry{s: &n.s, hash: n.hash, size: n.size, rec: n.rec}, cost: n.cost}
}

// is reports whether n holds the entry of id, whose key is key.
func (n *cacheNode) is(key uint64, id string) bool {
	if n.key != key {
		return false
	}
	if n.idLen == noInlineID {
		return n.s.ID == id
	}
	return int(n.idLen) == len(id) && string(n.id[:n.idLen]) == id
}

type cachedEntry struct {
	cacheEntry
	cost int64
}

func newCache(size int, maxBytes int64) *cache {
	if size <= 0 || maxBytes <= 0 {
		return nil
	}
	c := &cache{perShard: max(1, size/cacheShards), shardBytes: max(1, maxBytes/cacheShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].tab.Store(&cacheTable{buckets: make([]atomic.Pointer[cacheNode], 8)})
	}
	return c
}

// locate returns id's shard and the key of id within it.
func (c *cache) locate(id string) (*cacheShard, uint64) {
	h := maphash.String(c.seed, id)
	return &c.shards[h%cacheShards], h / cacheShards
}

func (t *cacheTable) bucket(key uint64) *atomic.Pointer[cacheNode] {
	return &t.buckets[key&uint64(len(t.buckets)-1)]
}

// get is entry for a reader, which needs the state alone: the node's
// hash and size lie on a cache line of their own, which a read leaves
// alone.
func (c *cache) get(id string) *crdt.Session {
	if n := c.node(id); n != nil {
		return &n.s
	}
	return nil
}

func (c *cache) entry(id string) (cacheEntry, bool) {
	e, _, ok := c.lookup(id)
	return e, ok
}

// cacheSlot is where the cache keeps an id: its shard and its key there,
// found once by the committer for the lookup and the publication of a
// write.
type cacheSlot struct {
	sh  *cacheShard
	key uint64
}

// lookup is entry, and also returns where id's entry is or would go.
func (c *cache) lookup(id string) (cacheEntry, cacheSlot, bool) {
	if c == nil {
		return cacheEntry{}, cacheSlot{}, false
	}
	sh, key := c.locate(id)
	slot := cacheSlot{sh, key}
	if n := sh.find(key, id); n != nil {
		return n.entry().cacheEntry, slot, true
	}
	return cacheEntry{}, slot, false
}

// node returns the node of id, nil if there is none.
func (c *cache) node(id string) *cacheNode {
	if c == nil {
		return nil
	}
	sh, key := c.locate(id)
	return sh.find(key, id)
}

// find returns the node of the id whose key is key, nil if there is none.
func (sh *cacheShard) find(key uint64, id string) *cacheNode {
	for n := sh.tab.Load().bucket(key).Load(); n != nil; n = n.next {
		if n.is(key, id) {
			return n
		}
	}
	return nil
}

// generation returns the generation of id's shard, for fill.
func (c *cache) generation(id string) uint64 {
	if c == nil {
		return 0
	}
	sh, _ := c.locate(id)
	return sh.gen.Load()
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
	sh, key := c.locate(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old, ok := sh.findLocked(key, s.ID); ok {
		return old.s
	}
	if sh.gen.Load() != gen {
		return nil
	}
	if !sh.insertLocked(key, e, c.perShard, c.shardBytes) {
		return nil
	}
	return s
}

// put records the state the committer just committed. Only the committer
// calls it.
func (c *cache) put(e cacheEntry) { c.putNode(e, nil) }

// putNode is put, publishing n (from newOwnedNode, unpublished, holding
// e.s) rather than a new node when n is not nil.
func (c *cache) putNode(e cacheEntry, n *cacheNode) {
	if c == nil {
		return
	}
	sh, key := c.locate(e.s.ID)
	c.putNodeAt(cacheSlot{sh, key}, e, n)
}

// putNodeAt is putNode at e's slot, from lookup.
func (c *cache) putNodeAt(slot cacheSlot, e cacheEntry, n *cacheNode) {
	if c == nil {
		return
	}
	sh, key := slot.sh, slot.key
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.insertNodeLocked(key, e, n, c.perShard, c.shardBytes)
}

func (sh *cacheShard) findLocked(key uint64, id string) (cachedEntry, bool) {
	for n := sh.tab.Load().bucket(key).Load(); n != nil; n = n.next {
		if n.is(key, id) {
			return n.entry(), true
		}
	}
	return cachedEntry{}, false
}

// insertLocked stores e, evicting entries to stay within perShard entries
// and maxBytes of estimated memory. A session too big for the shard is not
// stored, and an older entry for it is removed (the committer relies on a
// cached entry being the latest state): insertLocked reports whether e was
// stored.
func (sh *cacheShard) insertLocked(key uint64, e cacheEntry, perShard int, maxBytes int64) bool {
	return sh.insertNodeLocked(key, e, nil, perShard, maxBytes)
}

// insertNodeLocked is insertLocked, storing e in n when n holds it (see
// putNode).
func (sh *cacheShard) insertNodeLocked(key uint64, e cacheEntry, n *cacheNode, perShard int, maxBytes int64) bool {
	ce := cachedEntry{cacheEntry: e, cost: e.cost()}
	_, replaces := sh.deleteLocked(key, e.s.ID)
	if replaces {
		if ce.cost > maxBytes {
			sh.gen.Add(1)
			return false
		}
	} else if ce.cost > maxBytes {
		return false
	}
	for sh.n > 0 && (sh.n >= perShard || sh.bytes+ce.cost > maxBytes) {
		// Evict the entry the sweep meets first: cheap, and it spreads
		// evictions over the table like a random pick.
		sh.evictLocked()
		sh.gen.Add(1)
	}
	t := sh.tab.Load()
	if 2*sh.n >= len(t.buckets) {
		// At most half full: a replaced entry copies the nodes before it
		// in its chain (without), a few hundred bytes each, while a bucket
		// is 8 bytes.
		t = sh.growLocked(t)
	}
	b := t.bucket(key)
	// The committer's own node is published as it is, but for a new
	// session whose registers fit a node: copying them into one on every
	// write that builds a new base (one in a few) would add their size to
	// the garbage of a write. A write's node refers to the registers
	// where they are (in an older node, or apart), until the entry is
	// made again (shard growth, eviction and reload).
	if n == nil || e.s != &n.s || !replaces && n.inlines() && !n.inl {
		n = newNode(key, ce, b.Load())
	} else {
		n.key, n.hash, n.size, n.cost, n.next, n.rec = key, ce.hash, ce.size, ce.cost, b.Load(), ce.rec
	}
	b.Store(n)
	sh.n++
	sh.bytes += ce.cost
	return true
}

// deleteLocked removes the entry of id, if any, and returns it.
func (sh *cacheShard) deleteLocked(key uint64, id string) (cachedEntry, bool) {
	b := sh.tab.Load().bucket(key)
	head := b.Load()
	for n := head; n != nil; n = n.next {
		if n.is(key, id) {
			b.Store(without(head, n))
			sh.n--
			sh.bytes -= n.cost
			return n.entry(), true
		}
	}
	return cachedEntry{}, false
}

// without returns the chain head without node x: copies of the nodes
// before x, then those after it, shared.
func without(head, x *cacheNode) *cacheNode {
	if head == x {
		return x.next
	}
	// A plain copy: its registers stay where they are (in head, when
	// head holds them), as a write's do (insertNodeLocked).
	c := *head
	c.rehome()
	c.inl = false // its registers are where head's are
	c.next = without(head.next, x)
	return &c
}

// evictLocked removes one entry: the head of the first non-empty bucket
// from the sweep on.
func (sh *cacheShard) evictLocked() {
	t := sh.tab.Load()
	for range len(t.buckets) {
		b := &t.buckets[sh.sweep]
		sh.sweep = (sh.sweep + 1) & (len(t.buckets) - 1)
		if n := b.Load(); n != nil {
			b.Store(n.next)
			sh.n--
			sh.bytes -= n.cost
			return
		}
	}
}

// growLocked publishes a table of twice as many buckets holding new nodes
// for every entry: readers still walking the old one see it unchanged.
func (sh *cacheShard) growLocked(t *cacheTable) *cacheTable {
	g := &cacheTable{buckets: make([]atomic.Pointer[cacheNode], 2*len(t.buckets))}
	for i := range t.buckets {
		for n := t.buckets[i].Load(); n != nil; n = n.next {
			b := g.bucket(n.key)
			b.Store(newNode(n.key, n.entry(), b.Load()))
		}
	}
	sh.tab.Store(g)
	sh.sweep = 0
	return g
}

// each calls fn with every entry of the shard; the caller holds mu.
func (sh *cacheShard) eachLocked(fn func(cachedEntry)) {
	t := sh.tab.Load()
	for i := range t.buckets {
		for n := t.buckets[i].Load(); n != nil; n = n.next {
			fn(n.entry())
		}
	}
}

func (c *cache) remove(id string) {
	if c == nil {
		return
	}
	sh, key := c.locate(id)
	sh.mu.Lock()
	sh.deleteLocked(key, id)
	sh.gen.Add(1)
	sh.mu.Unlock()
}
