package simulations

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Durability and disks.
//
// Each node has persist's durability mode (NodeSpec.Durability). A crash
// of the process loses nothing any mode acknowledged (the writes are in
// the operating system's page cache); a power loss (Fault.PowerLoss) loses,
// under DurabilityNone, what the background fsync had not synced yet: the
// writes since the last fsync, one persist SyncInterval at most. Under
// sync and group an acknowledged write was fsynced first, so a power loss
// loses nothing either. (Group's extra latency of up to GroupWindow is not
// modelled: the simulated disk takes no time.)
//
// The model keeps, for a node under none, the state as of its last
// background fsync (the shadow store) and the batches applied since (the
// journal); a power loss replaces the store with the shadow brought up to
// the last fsync. The lost-writes checker then allows exactly the writes
// the node acknowledged after that fsync and that no other node held yet,
// and nothing else.
//
// A disk fault makes every write of the node fail (a failed write or
// fsync) for its duration: the workload's writes are refused, never
// acknowledged; the core keeps remote deltas for a retry.

// durableState is a node's durability bookkeeping.
type durableState struct {
	mode     persist.Durability
	shadow   *persist.Store // none: the store as of the last fsync
	journal  []journaled
	phase    int64 // of the background fsync, in true time
	interval int64
}

type journaled struct {
	at  int64
	now time.Time
	b   *crdt.Batch
}

// lastFsync is the latest background fsync at or before true time t.
func (d *durableState) lastFsync(t int64) int64 {
	if t < d.phase {
		return d.phase - d.interval
	}
	return d.phase + (t-d.phase)/d.interval*d.interval
}

// journal records a batch applied under none, syncing what the background
// fsync has synced since.
func (n *simNode) journal(e *engine, b *crdt.Batch, now time.Time) {
	d := &n.dur
	if d.mode != persist.DurabilityNone {
		return
	}
	at := e.now
	if e.hooks != nil {
		at -= e.hooks.powerLossExtra
	}
	if err := n.syncShadow(at); err != nil {
		e.fail(err)
		return
	}
	c := crdt.NewBatch()
	for _, s := range b.Sessions() {
		c.Add(s.Clone())
	}
	d.journal = append(d.journal, journaled{at: e.now, now: now, b: c})
}

// syncShadow applies to the shadow store what the fsyncs up to true time t
// made durable.
func (n *simNode) syncShadow(t int64) error {
	d := &n.dur
	synced := d.lastFsync(t)
	k := 0
	for ; k < len(d.journal) && d.journal[k].at <= synced; k++ {
		j := d.journal[k]
		if _, err := d.shadow.Apply(j.b, j.now); err != nil {
			return fmt.Errorf("simulations: %s: shadow store: %w", n.name, err)
		}
	}
	clear(d.journal[:k])
	d.journal = d.journal[k:]
	return nil
}

// powerLoss replaces a none node's store with what its fsyncs had made
// durable, and returns the true time of the last one (-1 when nothing is
// lost: another mode).
func (e *engine) powerLoss(n *simNode) (int64, error) {
	d := &n.dur
	if d.mode != persist.DurabilityNone {
		return -1, nil
	}
	at := e.now
	if e.hooks != nil {
		at -= e.hooks.powerLossExtra
	}
	if err := n.syncShadow(at); err != nil {
		return 0, err
	}
	lost := len(d.journal)
	d.journal = nil
	if err := n.store.Close(); err != nil {
		return 0, fmt.Errorf("simulations: %s: close store: %w", n.name, err)
	}
	n.store = d.shadow
	// A new shadow: a copy of what survived.
	shadow, err := e.openStore(n, "shadow")
	if err != nil {
		return 0, err
	}
	b := crdt.NewBatch()
	err = n.store.Buckets(context.Background(), allBuckets, func(s *crdt.Session) error {
		b.Add(s.Clone())
		return nil
	})
	if err == nil {
		_, err = shadow.Apply(b, e.localTime(n))
	}
	if err != nil {
		return 0, fmt.Errorf("simulations: %s: copy store: %w", n.name, err)
	}
	d.shadow = shadow
	e.record(TraceEvent{Kind: "power_loss", Node: n.name, Detail: fmt.Sprintf("%d batches since the last fsync lost", lost)})
	return d.lastFsync(e.now), nil
}

var allBuckets = func() []int {
	b := make([]int, persist.Buckets)
	for i := range b {
		b[i] = i
	}
	return b
}()

// openStore opens a store for node n, in memory or (Scenario.Storage
// badger) on disk in the run's temporary directory.
func (e *engine) openStore(n *simNode, what string) (*persist.Store, error) {
	var o persist.Options
	if e.sc.Storage == StorageBadger && what == "store" {
		dir, err := os.MkdirTemp(e.tmp, n.name+"-")
		if err != nil {
			return nil, fmt.Errorf("simulations: %w", err)
		}
		o = persist.DefaultOptions(dir)
		o.BlockCacheSize = 4 << 20
	} else {
		o = persist.InMemoryOptions()
		o.BlockCacheSize = 1 << 20
		// Small tables keep a 50-node mesh within memory; sizes do not
		// change what a store holds.
		o.MemTableSize = memTableSize(len(e.sc.Nodes))
	}
	o.GCInterval = 0
	o.ReclaimInterval = 0
	o.Logger = discardLogger
	o.MaxDrift = e.cfg.MaxDrift
	o.Limits = e.cfg.Limits
	// In memory the simulator's durability model sits above the store (a
	// crash of the process never loses what Apply returned); on disk the
	// store runs the node's own mode, for its real cost.
	o.Durability = persist.DurabilitySync
	if !o.InMemory {
		o.Durability = n.dur.mode
	}
	// Every node runs on the engine's goroutine, so Apply calls never
	// overlap: each commits in the caller, without the group-commit
	// hand-over. Group durability on disk keeps its committer: its window
	// is the cost it is run for.
	o.Serial = o.Durability != persist.DurabilityGroup
	st, err := persist.Open(o)
	if err != nil {
		return nil, fmt.Errorf("simulations: open %s of %s: %w", what, n.name, err)
	}
	return st, nil
}
