package persist

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestCacheReadersDuringWrites: readers, which take no lock, find either
// nothing or a state that was put for the id they asked, while a writer
// replaces, removes, evicts (a budget of about half the ids) and grows
// the shards' tables; afterwards the counts match what the shards hold.
func TestCacheReadersDuringWrites(t *testing.T) {
	const ids = 2000
	c := newCache(cacheShards*16, 1<<40) // 16 a shard: tables grow twice
	states := make([][]cacheEntry, ids)
	for i := range states {
		id := fmt.Sprintf("s%04d", i)
		for v := range 3 {
			states[i] = append(states[i], newEntry(newSession(id, 1, t0, v)))
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var hits atomic.Int64
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !stop.Load(); i = (i + 7) % ids {
				e, ok := c.entry(fmt.Sprintf("s%04d", i))
				if !ok {
					continue
				}
				hits.Add(1)
				known := false
				for _, s := range states[i] {
					known = known || (s.s.Equal(e.s) && s.hash == e.hash && s.size == e.size)
				}
				if !known {
					errs <- fmt.Errorf("read of s%04d returned %q, not a state put for it", i, e.s.ID)
					return
				}
			}
		}()
	}
	for round := range 10 {
		for i := range ids {
			switch (i + round) % 5 {
			case 0:
				c.remove(states[i][0].s.ID)
			default:
				c.put(states[i][(i+round)%3])
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if hits.Load() == 0 {
		t.Fatal("readers never found an entry")
	}
	total := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n, bytes := 0, int64(0)
		sh.eachLocked(func(e cachedEntry) { n++; bytes += e.cost })
		if n != sh.n || bytes != sh.bytes || n > c.perShard {
			t.Errorf("shard %d: holds %d entries of %d bytes, counts %d of %d, limit %d", i, n, bytes, sh.n, sh.bytes, c.perShard)
		}
		total += n
		sh.mu.Unlock()
	}
	if total == 0 {
		t.Fatal("nothing left cached")
	}
}

// nodeOf returns the cache node whose state s is.
func nodeOf(s *crdt.Session) *cacheNode {
	return (*cacheNode)(unsafe.Add(unsafe.Pointer(s), -int(unsafe.Offsetof(cacheNode{}.s))))
}

// inNode reports whether every value of s lies in the registers' room of
// its cache node, and the node starts on a cache line (or 8 bytes into
// one, after the allocator's header).
func inNode(s *crdt.Session) bool {
	n := uintptr(unsafe.Pointer(nodeOf(s)))
	if n%64 > 8 {
		return false
	}
	for _, v := range s.Fields.Values() {
		if v == "" {
			continue
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
		if p < n+unsafe.Sizeof(cacheNode{}) || p+uintptr(len(v)) > n+unsafe.Sizeof(cacheNode{})+maxInlineRegs {
			return false
		}
	}
	return true
}

// TestCacheRegistersInNode: a state whose registers are one packed base
// that fits is cached with them in its node, through puts, the growth of
// the shards' tables; one with an overlay, or too big, keeps them apart;
// every state reads back equal to what was put, also after removals of
// chain neighbours.
func TestCacheRegistersInNode(t *testing.T) {
	c := newCache(cacheShards*1024, 1<<40) // no eviction
	type kase struct {
		s      *crdt.Session
		inline bool
	}
	var cases []kase
	for i, fields := range []int{0, 1, 3, 10, 40, 200} {
		for packed := range 2 {
			s := newSession(fmt.Sprintf("r%d-%d", i, packed), 1, t0, fields)
			if packed == 1 {
				m := map[string]crdt.Field{}
				for k, f := range s.Fields.All() {
					m[k] = f
				}
				s.Fields = crdt.FieldsOf(m)
			}
			size, ok := s.Fields.PackedLen()
			cases = append(cases, kase{s, ok && size > 0 && size <= maxInlineRegs})
		}
	}
	check := func(when string, placed bool) {
		t.Helper()
		for _, k := range cases {
			e, ok := c.entry(k.s.ID)
			if !ok || !e.s.Equal(k.s) {
				t.Fatalf("%s: %s reads back %v %v", when, k.s.ID, ok, e.s)
			}
			if placed && k.s.Fields.Len() > 0 && inNode(e.s) != k.inline {
				t.Fatalf("%s: %s registers in its node: %v, want %v", when, k.s.ID, !k.inline, k.inline)
			}
		}
	}
	for _, k := range cases {
		c.put(newEntry(k.s))
	}
	check("after put", true)
	if _, packed := cases[4].s.Fields.PackedLen(); !cases[5].inline || packed || cases[11].inline {
		t.Fatalf("the cases do not cover a packed, an overlay and a big session")
	}
	for i := range 5000 { // grows every table, chains form
		c.put(newEntry(newSession(fmt.Sprintf("g%d", i), 1, t0, 1)))
	}
	check("after growth", true)
	for i := range 5000 {
		c.remove(fmt.Sprintf("g%d", i))
	}
	// A node copied when a neighbour leaves its chain reads its
	// registers where they were.
	check("after removals", false)
}

// TestNewSessionPublishedOnce: a session new to an in-memory store is
// published in one node holding its registers, and the backend keeps that
// same state, not a second copy; merges that write nothing (a guarded
// delta whose guard fails) leave nothing behind.
func TestNewSessionPublishedOnce(t *testing.T) {
	for _, serial := range []bool{false, true} {
		o := testOptions("")
		o.Serial = serial
		st := openStore(t, o)
		var ds []*crdt.Session
		for i := range 3 {
			ds = append(ds, newSession(fmt.Sprintf("n%d-%v", i, serial), 1, t0, 1+3*i))
		}
		// Guarded on an entry no store holds: nothing merges.
		ghost := crdt.Create(fmt.Sprintf("ghost-%v", serial), crdt.NewTimestamp(t0.UnixMilli(), 0, 2), t0.Add(time.Hour), time.Hour)
		ghost.Guard = &crdt.Guard{Need: crdt.Version{{Node: 9, Time: 1}}}
		res, err := st.Apply(crdt.NewBatch(append(ds, ghost)...), t0)
		if err != nil || len(res.Changes) != len(ds)+1 {
			t.Fatalf("apply: %v, %d changes", err, len(res.Changes))
		}
		for _, d := range ds {
			e, ok := st.cache.entry(d.ID)
			if !ok || !e.s.Equal(d) {
				t.Fatalf("%s: cached %v %v", d.ID, ok, e.s)
			}
			if !inNode(e.s) {
				t.Fatalf("%s: registers apart from the node", d.ID)
			}
			if b, err := st.be.load(d.ID); err != nil || b != e.s {
				t.Fatalf("%s: the backend holds %p (%v), the cache %p", d.ID, b, err, e.s)
			}
		}
		if _, err := st.Get(ghost.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a dropped delta left a session: %v", err)
		}
		if b, _ := st.be.load(ghost.ID); b != nil {
			t.Fatalf("a dropped delta left a record: %v", b)
		}
	}
}
