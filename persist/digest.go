package persist

import (
	"sync/atomic"

	"github.com/cespare/xxhash/v2"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// Buckets is the number of anti-entropy buckets. A session belongs to bucket
// BucketOf(id) on every peer.
const Buckets = 4096

// BucketOf returns the anti-entropy bucket of a session id.
func BucketOf(id string) int { return int(xxhash.Sum64String(id) % Buckets) }

// Digests is a snapshot of the store's bucket digests. Two stores holding the
// same sessions have equal digests; a bucket whose digests differ holds at
// least one session that differs.
type Digests struct {
	// Root combines every bucket: equal roots mean, with overwhelming
	// probability, equal stores, so peers in agreement compare 8 bytes.
	Root uint64
	// Buckets holds one digest per bucket.
	Buckets [Buckets]uint64
}

// digests keeps each bucket's digest as the XOR of its entries' hashes.
// XOR makes an update O(1) (remove the old hash, add the new) and lets
// concurrent committers apply their updates in any order. It also counts
// the readable sessions of each bucket, so that scans skip empty buckets
// without a seek: Badger finds a bucket empty only by stepping over every
// delete marker its collected sessions left, until compaction drops them.
type digests struct {
	buckets [Buckets]atomic.Uint64
	root    atomic.Uint64
	// sessions counts the entries, and sizes those of each bucket: a
	// hash of 0 stands for no session.
	sessions atomic.Int64
	sizes    [Buckets]atomic.Int64
}

// holds reports whether bucket holds a readable session.
func (d *digests) holds(bucket int) bool { return d.sizes[bucket].Load() > 0 }

func (d *digests) update(bucket int, oldHash, newHash uint64) {
	switch {
	case oldHash == 0 && newHash != 0:
		d.sessions.Add(1)
		d.sizes[bucket].Add(1)
	case oldHash != 0 && newHash == 0:
		d.sessions.Add(-1)
		d.sizes[bucket].Add(-1)
	}
	x := oldHash ^ newHash
	if x == 0 {
		return
	}
	xorInto(&d.buckets[bucket], x)
	xorInto(&d.root, x)
}

func xorInto(a *atomic.Uint64, x uint64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, old^x) {
			return
		}
	}
}

func (d *digests) snapshotInto(out *Digests) {
	out.Root = d.root.Load()
	for i := range d.buckets {
		out.Buckets[i] = d.buckets[i].Load()
	}
}

// SessionHash is the hash a session contributes to its bucket's digest
// (0 for nil): equal sessions hash equal on every peer, so anti-entropy
// can compare single sessions without sending them.
func SessionHash(s *crdt.Session) uint64 { return sessionHash(s) }
