package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// idsInBucket returns n session ids that fall in bucket b.
func idsInBucket(prefix string, b, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		if id := fmt.Sprintf("%s%d", prefix, i); persist.BucketOf(id) == b {
			out = append(out, id)
		}
	}
	return out
}

// During a write burst, periodic rounds leave to gossip the buckets that
// changed here within the settle window (their differences are writes in
// flight), but compare a bucket once it has been left out for
// maxDeferral: a delta lost in a bucket that never stops changing is
// still repaired, within a few rounds. A round of a new connection
// compares every bucket at once.
func TestPeriodicRoundsDeferBucketsInMotion(t *testing.T) {
	r := newCoreRun(t, 2, 1) // SyncInterval 1 s: settle 100 ms, deferral at most 1 s
	r.run(r.now.Add(5 * time.Second))
	a, b := r.ids[0], r.ids[1]
	ca, cb := r.cores[a], r.cores[b]
	if w, d := ca.settleWindow(), ca.maxDeferral(); w != 100*time.Millisecond || d != time.Second {
		t.Fatalf("settle window %v, deferral bound %v", w, d)
	}
	has := func(c *Core, id string) bool { _, err := c.store.Get(id); return err == nil }
	// lose writes id on a and drops its delta to b.
	lose := func(id string) {
		r.write(a, id, 1)
		ca.Flush()
		r.collect(a)
		r.queue = nil
	}
	bucket := persist.BucketOf("lost")
	busy := idsInBucket("busy", bucket, 200)
	lose("lost")

	// The bucket keeps changing: a write in it every 50 ms, delivered.
	start, deferred, repairedAt := r.now, false, time.Duration(0)
	for i := 0; r.now.Sub(start) < 10*time.Second; i++ {
		r.write(a, busy[i], 1)
		r.run(r.now.Add(50 * time.Millisecond))
		if p := ca.peers[b]; p != nil && !p.deferred[bucket].IsZero() {
			deferred = true
		}
		if p := cb.peers[a]; p != nil && !p.deferred[bucket].IsZero() {
			deferred = true
		}
		if has(cb, "lost") {
			repairedAt = r.now.Sub(start)
			break
		}
	}
	if !deferred {
		t.Fatal("no periodic round left the bucket in motion to gossip")
	}
	if repairedAt == 0 {
		t.Fatal("the lost delta, in a bucket that kept changing, was not repaired in 10 s of rounds every second")
	}
	if repairedAt < 500*time.Millisecond {
		t.Fatalf("repaired after %v: the first periodic round did not leave the bucket in motion", repairedAt)
	}
	t.Logf("lost delta repaired after %v of writes to its bucket", repairedAt)

	// A new connection's round compares the bucket however busy it is.
	lose("lost2")
	r.write(a, busy[len(busy)-1], 1)
	ca.PeerDown(r.now, b)
	ca.PeerUp(r.now, b)
	r.collect(a)
	r.run(r.now.Add(100 * time.Millisecond))
	if !has(cb, "lost2") {
		t.Fatal("the round of a new connection left a busy bucket's difference alone")
	}
}
