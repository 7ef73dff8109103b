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
// the bug, or the catch proves nothing.

const plantedSeeds = 10

// caughtWithin runs seeds 1..plantedSeeds of a bundled scenario with the
// bug planted until the checker fails.
func caughtWithin(t *testing.T, scenario, check string, h *hooks) {
	t.Helper()
	t.Parallel()
	sc, err := LoadScenario(scenario)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= plantedSeeds; seed++ {
		res, err := run(sc, seed, h)
		if err != nil {
			t.Fatal(err)
		}
		c := checkOf(t, res, check)
		if !c.Judged {
			t.Fatalf("%s does not judge %s", scenario, check)
		}
		if c.Pass {
			continue
		}
		if seed != sc.Seed { // TestLibrary runs the scenario's own seed
			clean, err := Run(sc, seed)
			if err != nil {
				t.Fatal(err)
			}
			if !clean.Verdict.Pass {
				t.Fatalf("seed %d fails without the planted bug:\n%s", seed, clean.Summary())
			}
		}
		t.Logf("caught at seed %d: %s = %s", seed, check, c.Measured)
		return
	}
	t.Fatalf("%s: not caught by %s within %d seeds", scenario, check, plantedSeeds)
}

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
