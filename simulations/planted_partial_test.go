//go:build sessionmesh_plant

package simulations

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/internal/placement"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Planted partial-replication bugs (config.replicas): each must fail the
// bundled partial-churn-small scenario at seed 1, the scenario's own seed,
// which passes without the bug (TestLibrary). Not by luck: each bug breaks
// a rule on every run with churn (a join moves slots, a node cut off alone
// writes sessions only handoff can carry).

// caughtAtSeed1 requires the planted run of partial-churn-small at seed 1
// to fail every one of checks.
func caughtAtSeed1(t *testing.T, h *hooks, checks ...string) {
	t.Helper()
	t.Parallel()
	sc, err := LoadScenario("partial-churn-small")
	if err != nil {
		t.Fatal(err)
	}
	if sc.Seed != 1 {
		t.Fatalf("partial-churn-small's own seed is %d, want 1 (TestLibrary proves it passes)", sc.Seed)
	}
	res, err := run(sc, 1, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range checks {
		mustFail(t, res, name)
	}
}

// handoffMsg mirrors node's handoff message (partial.go).
type handoffMsg struct {
	_msgpack struct{} `msgpack:",as_array"`
	Seq      uint64
	Batch    []byte
}

// A holder that acknowledges a handoff before it persisted it (here: never
// persists it): the writer drops the only copies of what it wrote while it
// was cut off.
func TestPlantedHandoffAckedBeforePersisted(t *testing.T) {
	caughtAtSeed1(t, &hooks{handoffUnstored: true}, CheckUnsafeDrops, CheckLostWrites)
}

// A node that drops what it hands off as soon as it sends it, not once
// every holder acknowledged it: a slot that moved (a join) falls below R
// copies in its region while the new holder has not stored it yet.
func TestPlantedDropBeforeNewHolderHasIt(t *testing.T) {
	h := &hooks{rewrite: func(e *engine, from, to int, gossip bool, data []byte) []byte {
		if gossip || len(data) < 2 || data[1] != kindHandoff {
			return data
		}
		var m handoffMsg
		if err := msgpack.Unmarshal(data[2:], &m); err != nil {
			t.Errorf("hook: handoff: %v", err)
			return data
		}
		b, err := crdt.UnmarshalBatch(m.Batch, crdt.DefaultLimits())
		if err != nil {
			t.Errorf("hook: handoff: %v", err)
			return data
		}
		n := e.nodes[from]
		var hs []persist.Handed
		for _, s := range b.Sessions() {
			if cur, err := n.store.Get(s.ID); err == nil {
				hs = append(hs, persist.Handed{ID: s.ID, Hash: persist.SessionHash(cur)})
			}
		}
		if _, err := n.sim.Drop(hs); err != nil {
			t.Errorf("hook: drop: %v", err)
		}
		return data
	}}
	caughtAtSeed1(t, h, CheckUnsafeDrops)
}

// Holders that answer a non-holder's read with a stale copy (here: the
// session without its fields): the probe reads after the settle see it.
func TestPlantedStaleRemoteReads(t *testing.T) {
	caughtAtSeed1(t, &hooks{staleFetches: true}, CheckStaleReads)
}

// Placement computed over the members in the order a node learned them (a
// forgotten sort): nodes disagree on the holders, so slots end with fewer
// than R copies in a region. Planted in internal/placement, which only
// this build tag can do.
func TestPlantedPlacementByLearningOrder(t *testing.T) {
	placement.PlantOrder = true
	defer func() { placement.PlantOrder = false }()
	sc, err := LoadScenario("partial-churn-small")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, res, CheckHolders)
}
