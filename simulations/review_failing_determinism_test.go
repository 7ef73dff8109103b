package simulations

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// TestReviewFailingRunDeterministic: a run whose end-of-run checkers add
// violations to the trace while the result's trace copy, lags and
// fingerprint are worked out on another goroutine (engine.result) gives
// the same fingerprint, trace (violations included, after the run's
// events) and lags on one core as on several, and again on a second run.
// The planted bug is TestBrokenMergeWriteBeatsDestroyIsCaught's.
func TestReviewFailingRunDeterministic(t *testing.T) {
	hook := func() *hooks {
		return rewriteSessions(t, func(e *engine, to int, s *crdt.Session) *crdt.Session {
			if !s.IsDestroyed() {
				return s
			}
			cur, err := e.nodes[to].store.Get(s.ID)
			if err != nil || cur.IsDestroyed() {
				return s
			}
			for _, f := range cur.Fields.All() {
				if f.TS.Compare(s.Destroyed) > 0 {
					return nil
				}
			}
			if cur.LastAccess > s.Destroyed.Millis() {
				return nil
			}
			return s
		})
	}
	var runs []*Result
	for _, procs := range []int{1, 2, 2} {
		prev := runtime.GOMAXPROCS(procs)
		r := runHooked(t, "split-brain", 1, hook())
		runtime.GOMAXPROCS(prev)
		if r.Verdict.Pass || len(r.Violations) == 0 {
			t.Fatalf("the planted bug was not caught: the run proves nothing here\n%s", r.Summary())
		}
		runs = append(runs, r)
	}
	tr, _ := json.Marshal(runs[0].Trace)
	violations := 0
	for _, ev := range runs[0].Trace {
		if ev.Kind == "violation" {
			violations++
		}
	}
	// Printed so that the figures can be compared with another build's.
	t.Logf("fingerprint %s, trace %d events (%d violations) sha256 %x, lags %d",
		runs[0].Fingerprint, len(runs[0].Trace), violations, sha256.Sum256(tr), len(runs[0].Lags))
	if violations == 0 {
		t.Fatal("no violation in the trace")
	}
	for i, r := range runs[1:] {
		if r.Fingerprint != runs[0].Fingerprint {
			t.Fatalf("run %d: fingerprint %s, first run %s", i+1, r.Fingerprint, runs[0].Fingerprint)
		}
		if !reflect.DeepEqual(r.Trace, runs[0].Trace) {
			t.Fatalf("run %d: trace of %d events differs from the first run's %d", i+1, len(r.Trace), len(runs[0].Trace))
		}
		if !reflect.DeepEqual(r.Lags, runs[0].Lags) || fmt.Sprint(r.Violations) != fmt.Sprint(runs[0].Violations) {
			t.Fatalf("run %d: lags or violations differ", i+1)
		}
	}
}
