package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// StorageKind says what a StorageOp asks of the store.
type StorageKind uint8

// Storage operations.
const (
	// StoreApply merges Batch into the store (Store.Apply at Now).
	StoreApply StorageKind = iota + 1
	// StoreScan reads sessions of Buckets, from the cursor After, up to
	// about MaxBytes (Store.Buckets).
	StoreScan
	// StoreCollect collects up to Budget expired sessions
	// (Store.CollectGarbage at Now).
	StoreCollect
	// StoreDrop removes the sessions of Handed that are still as handed
	// off (partial replication; the store must be a Dropper).
	StoreDrop
)

// StorageOp is I/O the Core decided and the runtime carries out outside the
// Core's lock, in any order relative to other StorageOps, then reports with
// Core.Stored. Nothing the Core sends or acknowledges depends on a
// StorageOp before Stored reports it: a Ready's Broadcasts, Messages and
// Acks never wait on that Ready's Storage.
type StorageOp struct {
	Ticket uint64
	Kind   StorageKind
	Now    time.Time

	Batch *crdt.Batch // StoreApply
	// Local marks the write of a local operation, whose caller waits for
	// it (its Ack follows Stored); the others are remote batches.
	Local bool

	// StoreScan: Buckets in ascending order; After, when set, skips the
	// sessions of the first bucket up to and including that id (the
	// store's order: id length, then id); the scan stops once it holds
	// MaxBytes (approximate encoded size) or MaxSessions.
	Buckets     []int
	After       string
	Upto        string // when set, the scan ends after this id of the last bucket
	MaxBytes    int
	MaxSessions int
	// Filter, when set, keeps only the sessions it accepts (the answer to
	// a peer's bucket summary).
	Filter func(*crdt.Session) bool

	Budget int // StoreCollect

	Handed []persist.Handed // StoreDrop
}

// StorageResult is the outcome of a StorageOp.
type StorageResult struct {
	Ticket uint64
	Kind   StorageKind
	Err    error

	Apply persist.Result // StoreApply

	// StoreScan: the sessions read and, when the scan stopped early
	// (More), where the next one starts: NextBucket after NextAfter.
	Sessions   []*crdt.Session
	More       bool
	NextBucket int
	NextAfter  string

	Collected int // StoreCollect; StoreDrop: sessions dropped
}

// Dropper is a Store that can forget sessions handed off to their holders
// (*persist.Store is one); partial replication needs it.
type Dropper interface {
	Drop(hs []persist.Handed) (int, error)
}

// errScanFull stops a scan that holds enough.
var errScanFull = errors.New("node: scan full")

// Run carries out op on st. Node runs it on the goroutine that stepped the
// Core, outside the Core's lock, so concurrent writers and remote batches
// meet in the store's group commit; the simulator runs it inline.
func (op StorageOp) Run(ctx context.Context, st Store) StorageResult {
	res := StorageResult{Ticket: op.Ticket, Kind: op.Kind}
	switch op.Kind {
	case StoreApply:
		res.Apply, res.Err = st.Apply(op.Batch, op.Now)
	case StoreCollect:
		res.Collected, res.Err = st.CollectGarbage(op.Now, op.Budget)
	case StoreDrop:
		d, ok := st.(Dropper)
		if !ok {
			res.Err = fmt.Errorf("node: store %T cannot drop sessions (partial replication)", st)
			break
		}
		res.Collected, res.Err = d.Drop(op.Handed)
	case StoreScan:
		return op.scan(ctx, st)
	default:
		res.Err = fmt.Errorf("node: unknown storage op %d", op.Kind)
	}
	return res
}

// scan carries out a StoreScan. It is apart from Run because its callback
// captures op and the result: in Run they would go to the heap on every
// call, applies included.
func (op StorageOp) scan(ctx context.Context, st Store) StorageResult {
	res := StorageResult{Ticket: op.Ticket, Kind: op.Kind}
	first := -1
	if len(op.Buckets) > 0 {
		first = op.Buckets[0]
	}
	size := 0
	err := st.Buckets(ctx, op.Buckets, func(s *crdt.Session) error {
		b := persist.BucketOf(s.ID)
		if op.After != "" && b == first && !idAfter(s.ID, op.After) {
			return nil
		}
		if op.Upto != "" && b == op.Buckets[len(op.Buckets)-1] && idAfter(s.ID, op.Upto) {
			return errScanFull // past the range, nothing more to read
		}
		if op.Filter != nil && !op.Filter(s) {
			return nil
		}
		n := approxSize(s)
		if len(res.Sessions) > 0 && (size+n > op.MaxBytes || len(res.Sessions) >= op.MaxSessions) {
			res.More, res.NextBucket = true, b
			last := res.Sessions[len(res.Sessions)-1]
			if persist.BucketOf(last.ID) == b {
				res.NextAfter = last.ID
			}
			return errScanFull
		}
		res.Sessions = append(res.Sessions, s)
		size += n
		return nil
	})
	if err != nil && !errors.Is(err, errScanFull) {
		res.Err = err
	}
	return res
}

// idAfter reports whether id comes after ref in the store's bucket order.
func idAfter(id, ref string) bool {
	if len(id) != len(ref) {
		return len(id) > len(ref)
	}
	return id > ref
}

// Ack answers a local operation once its write is durable (or failed).
type Ack struct {
	Ticket uint64
	Err    error
	// Deltas are what the operation wrote, for the simulator's checkers.
	Deltas []*crdt.Session
}

// sortedBuckets returns the buckets of s in ascending order.
func sortedBuckets(s bucketSet) []int {
	var out []int
	s.each(func(b int) { out = append(out, b) }) // ascending
	return out
}
