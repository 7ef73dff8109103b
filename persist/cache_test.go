package persist

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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
