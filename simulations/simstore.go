package simulations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// errDisk is what a store whose disk is failing (a disk fault) returns.
var errDisk = errors.New("injected disk fault: write or fsync failed")

// simStore is a node's store as its core (and the workload's writes) see
// it: the persist store, with the simulator's disk faults and durability
// model, the deferral bookkeeping of the checkers, and the test-only
// planted bugs. It satisfies node.Store.
type simStore struct {
	e *engine
	n *simNode
}

func (s *simStore) Get(id string) (*crdt.Session, error) { return s.n.store.Get(id) }
func (s *simStore) Digests() *persist.Digests            { return s.n.store.Digests() }
func (s *simStore) DigestsInto(d *persist.Digests)       { s.n.store.DigestsInto(d) }
func (s *simStore) Root() uint64                         { return s.n.store.Root() }
func (s *simStore) CollectGarbage(now time.Time, budget int) (int, error) {
	return s.n.store.CollectGarbage(now, budget)
}

// Apply stores a batch, unless the node's disk is failing.
func (s *simStore) Apply(b *crdt.Batch, now time.Time) (persist.Result, error) {
	e, n := s.e, s.n
	if n.diskFaults > 0 {
		e.stats.diskErrors++
		return persist.Result{}, fmt.Errorf("simulations: %s: %w", n.name, errDisk)
	}
	if n.unstored {
		return persist.Result{}, nil // planted: reported stored, never stored
	}
	res, err := n.store.Apply(b, now)
	if err != nil {
		return res, err
	}
	n.journal(e, b, now)
	e.chk.deferrals(n, b, res, now)
	if e.hooks != nil && e.hooks.loseDeferred {
		// Planted: the core never hears of the deferred deltas, so it
		// never retries them.
		res.Deferred = nil
	}
	return res, nil
}

// applyLocal stores a client's write, as Apply does but without following
// deferrals: the workload refuses a deferred local write itself.
func (s *simStore) applyLocal(b *crdt.Batch, now time.Time) (persist.Result, error) {
	e, n := s.e, s.n
	if n.diskFaults > 0 {
		e.stats.diskErrors++
		return persist.Result{}, fmt.Errorf("simulations: %s: %w", n.name, errDisk)
	}
	res, err := n.store.Apply(b, now)
	if err == nil {
		n.journal(e, b, now)
	}
	return res, err
}

// Buckets scans buckets for anti-entropy.
func (s *simStore) Buckets(ctx context.Context, buckets []int, fn func(*crdt.Session) error) error {
	if h := s.e.hooks; h != nil && h.skipBucket != nil {
		// Planted: anti-entropy never sends one bucket.
		return s.n.store.Buckets(ctx, buckets, func(x *crdt.Session) error {
			if persist.BucketOf(x.ID) == *h.skipBucket {
				return nil
			}
			return fn(x)
		})
	}
	return s.n.store.Buckets(ctx, buckets, fn)
}

// localStore is simStore for a client's write (StorageOp.Local).
type localStore struct{ *simStore }

func (s localStore) Apply(b *crdt.Batch, now time.Time) (persist.Result, error) {
	return s.applyLocal(b, now)
}
