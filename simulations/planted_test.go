//go:build sessionmesh_plant

package simulations

import (
	"math/rand/v2"
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// The planted-bug suite: each bug is planted through a test-only hook of
// the engine (a store wrapper or a rewrite of messages in flight; the
// merge tie-break through crdt's sessionmesh_plant build tag, in
// planted_tie_test.go), and must be caught by the named checker within 10
// seeds of a bundled scenario. The seed that catches it must pass without
// the bug, or the catch proves nothing. The suite runs many seeds of the
// larger scenarios, so it has its own CI step:
//
//	go test -tags sessionmesh_plant -run Planted ./simulations

// dropTombstones plants a merge where a destroy loses: a tombstone arriving
// at a node whose copy is newer in the way beats says is ignored.
func dropTombstones(t *testing.T, beats func(cur, tomb *crdt.Session) bool) *hooks {
	return rewriteSessions(t, func(e *engine, to int, s *crdt.Session) *crdt.Session {
		if !s.IsDestroyed() {
			return s
		}
		cur, err := e.nodes[to].store.Get(s.ID)
		if err != nil || cur.IsDestroyed() || !beats(cur, s) {
			return s
		}
		return nil
	})
}

func TestPlantedDestroyLosingToLaterWrite(t *testing.T) {
	caughtWithin(t, "flapping-link", CheckResurrections, dropTombstones(t, func(cur, tomb *crdt.Session) bool {
		for _, f := range cur.Fields.All() {
			if f.TS.Compare(tomb.Destroyed) > 0 {
				return true
			}
		}
		return false
	}))
}

func TestPlantedTouchExtendingDestroyedSession(t *testing.T) {
	caughtWithin(t, "flapping-link", CheckResurrections, dropTombstones(t, func(cur, tomb *crdt.Session) bool {
		return cur.LastAccess > tomb.Destroyed.Millis()
	}))
}

// The bucket is drawn afresh for every run of the test: a checker that
// only notices some buckets cannot pass by luck of a fixed choice.
func TestPlantedSkippedAntiEntropyBucket(t *testing.T) {
	b := rand.IntN(persist.Buckets)
	t.Logf("anti-entropy never sends bucket %d", b)
	caughtWithin(t, "silent-cut-90s", CheckConvergence, &hooks{skipBucket: &b})
}

func TestPlantedLostDeferredDelta(t *testing.T) {
	caughtWithin(t, "clock-skew-beyond-bound", CheckDeferred, &hooks{loseDeferred: true})
}

// A transport that backs its redial off to 30 s (as before issue 10) fails
// the bundled silent-cut scenario: the regression is caught within 3 seeds
// (the dialers' schedules are jittered, so one seed in a few may find every
// link redialled just after the heal by chance).
func TestPlantedSlowRedialFailsSilentCut(t *testing.T) {
	sc, err := LoadScenario("silent-cut-90s")
	if err != nil {
		t.Fatal(err)
	}
	two := 2.0
	sc.Network.Transport.RedialBackoff = &two
	for seed := uint64(1); seed <= 3; seed++ {
		res, err := Run(sc, seed)
		if err != nil {
			t.Fatal(err)
		}
		if c := checkOf(t, res, CheckReconnect); !c.Pass {
			t.Logf("caught at seed %d: %s = %s", seed, c.Name, c.Measured)
			return
		}
	}
	t.Fatal("a redial backing off to 30 s passed seeds 1 to 3")
}
