package persist

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestCloseWhileBusy closes a store while writers, readers and bucket scans
// run: every call returns (nil or ErrClosed), nothing panics or hangs.
func TestCloseWhileBusy(t *testing.T) {
	for _, d := range []Durability{DurabilitySync, DurabilityGroup, DurabilityNone} {
		t.Run(d.String(), func(t *testing.T) {
			o := testOptions(t.TempDir())
			o.Durability = d
			s, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						_, err := s.Apply(crdt.NewBatch(newSession(fmt.Sprintf("w%d-%d", w, i), 1, t0, 2)), t0)
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				for {
					err := s.Bucket(context.Background(), BucketOf("w0-0"), func(*crdt.Session) error { return nil })
					if err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				for {
					if _, err := s.Get("w0-0"); err != nil && !errors.Is(err, ErrNotFound) {
						errs <- err
						return
					}
				}
			}()
			time.Sleep(50 * time.Millisecond)
			done := make(chan error)
			go func() { done <- s.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close hung")
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(10 * time.Second):
				t.Fatal("a call hung across Close")
			}
			close(errs)
			for err := range errs {
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("call across Close: %v, want ErrClosed", err)
				}
			}
		})
	}
}

// TestReadYourWritesWithEvictions: with a tiny cache and readers forcing
// evictions and misses, every Apply that has returned is visible to the
// next Get.
func TestReadYourWritesWithEvictions(t *testing.T) {
	o := testOptions("")
	o.CacheSessions = 64
	s := openStore(t, o)
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("r%03d", i)
		ids = append(ids, id)
		apply(t, s, t0, newSession(id, 1, t0, 0))
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = s.Get(ids[i%len(ids)])
			}
		}()
	}
	clock := crdt.NewClock(2, time.Second)
	for i := range 2000 {
		id := ids[i%len(ids)]
		base := mustGet(t, s, id)
		want := fmt.Sprint(i)
		apply(t, s, t0, base.Set("v", []byte(want), clock.Now(t0)))
		if v, _ := mustGet(t, s, id).Get("v"); string(v) != want {
			close(stop)
			t.Fatalf("write %d not visible after Apply returned: got %q", i, v)
		}
	}
	close(stop)
	readers.Wait()
}

// TestLateTombstoneStillDestroys: a tombstone issued with an earlier
// deadline than the stored session's (its issuer never saw the later one)
// must destroy the session even after its own deadline.
func TestLateTombstoneStillDestroys(t *testing.T) {
	s := openStore(t, testOptions(""))
	live := newSession("s", 1, t0, 1) // deadline t0+1h
	apply(t, s, t0, live)
	tomb := crdt.Tombstone("s", crdt.NewTimestamp(t0.UnixMilli()+1, 0, 2), t0.Add(30*time.Minute))
	res := apply(t, s, t0.Add(45*time.Minute), tomb)
	if len(res.Refused) != 0 || len(res.Changes) != 1 || !res.Changes[0].Destroyed {
		t.Fatalf("tombstone past its own deadline but not the session's: %+v", res)
	}
	if got := mustGet(t, s, "s"); !got.IsDestroyed() {
		t.Fatal("session still live")
	}
}

// TestUnreadableRecordDoesNotStopTheStore: a record that cannot be decoded
// is refused for its own deltas only, and still collected when due.
func TestUnreadableRecordDoesNotStopTheStore(t *testing.T) {
	s := openStore(t, testOptions(t.TempDir()))
	good := newSession("good", 1, t0, 1)
	bad := newSession("bad", 1, t0, 1)
	apply(t, s, t0, good, bad)
	putRaw(t, s, "bad", []byte{1, 's', 0xc1})
	other := newSession("other", 1, t0, 1)
	res := apply(t, s, t0, bad.Touch(t0.Add(time.Second)), other)
	if len(res.Refused) != 1 || res.Refused[0].ID != "bad" || !errors.Is(res.Refused[0].Err, ErrCorrupt) {
		t.Fatalf("refused = %+v", res.Refused)
	}
	if len(res.Changes) != 1 || res.Changes[0].ID != "other" {
		t.Fatalf("the rest of the batch must apply: %+v", res.Changes)
	}
	n, err := s.CollectGarbage(t0.Add(2*time.Hour), 100)
	if err != nil || n != 3 {
		t.Fatalf("collected %d (%v), want all three including the unreadable one", n, err)
	}
	// Lowering a limit does not make stored records unreadable.
	apply(t, s, t0.Add(2*time.Hour), newSession("wide", 1, t0.Add(2*time.Hour), 6))
	s.opts.Limits.MaxFields = 2
	s.cache.remove("wide")
	if _, err := s.Get("wide"); err != nil {
		t.Fatalf("record written under wider limits: %v", err)
	}
}

// TestCacheFillAfterEviction is the interleaving behind read-your-writes:
// a miss reads S0, a writer caches S1, S1 is evicted, then the miss fills.
// The stale S0 must not be cached.
func TestCacheFillAfterEviction(t *testing.T) {
	c := newCache(cacheShards, 1<<40) // one entry per shard
	s0 := newSession("id", 1, t0, 1)
	s1 := s0.Clone()
	_, _ = s1.Merge(s0.Set("k", []byte("new"), crdt.NewTimestamp(t0.UnixMilli()+5, 0, 1)))
	gen := c.generation("id")
	c.put(cacheEntry{s: s1})
	c.remove("id") // stands for an eviction or a collection
	if got := c.fill(cacheEntry{s: s0}, gen); got != nil {
		t.Fatal("a fill that began before an eviction was cached")
	}
	if c.get("id") != nil {
		t.Fatal("stale state cached")
	}
	if got := c.fill(cacheEntry{s: s1}, c.generation("id")); got == nil {
		t.Fatal("a fresh fill was refused")
	}
}

// TestCacheBytes: the cache keeps within its byte budget, and a session too
// big for a shard is not cached, nor is an older state of it left behind.
func TestCacheBytes(t *testing.T) {
	small := newSession("id", 1, t0, 1)
	c := newCache(1<<20, cacheShards*2*newEntry(small).cost())
	c.put(newEntry(small))
	if c.get("id") == nil {
		t.Fatal("a small session was not cached")
	}
	big := small.Clone()
	_, _ = big.Merge(small.Set("k", make([]byte, 4096), crdt.NewTimestamp(t0.UnixMilli()+5, 0, 1)))
	gen := c.generation("id")
	c.put(newEntry(big))
	if c.get("id") != nil {
		t.Fatal("the older state stayed cached when the new one was too big")
	}
	if c.generation("id") == gen {
		t.Fatal("dropping the older state did not move the generation")
	}
	if got := c.fill(newEntry(big), c.generation("id")); got != nil {
		t.Fatal("a session over the shard's budget was cached")
	}
	for i := range 100 {
		c.put(newEntry(newSession(fmt.Sprintf("s%d", i), 1, t0, 1)))
	}
	for i := range c.shards {
		sh := &c.shards[i]
		var sum int64
		sh.eachLocked(func(e cachedEntry) { sum += e.cost })
		if sum != sh.bytes || sh.bytes > c.shardBytes {
			t.Fatalf("shard %d: %d bytes counted, %d held, budget %d", i, sh.bytes, sum, c.shardBytes)
		}
	}
}
