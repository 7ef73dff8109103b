package simulations

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// TestReviewFailingRunDeterministic: a run whose end-of-run checkers add
// violations to the trace while the result's trace copy, lags and
// fingerprint are worked out on another goroutine (engine.result) gives
// the same fingerprint, trace (violations included, after the run's
// events) and lags on one core as on several, on two runs.
// The planted bugs are those of TestBrokenMergeWriteBeatsDestroyIsCaught,
// TestBrokenMergeCorruptValueIsCaught (lost writes, which the final check
// judges from the stores read on goroutines of their own) and
// TestBrokenStoreReadYourWritesIsCaught.
func TestReviewFailingRunDeterministic(t *testing.T) {
	writeBeats := func() *hooks { return writeBeatsDestroy(t) }
	corruptValue := func() *hooks { return corruptValuesTo(t, "ap-1") }
	skipSets := func() *hooks {
		return &hooks{skipApply: func(e *engine, n int, op opKind) bool {
			return e.nodes[n].name == "us-1" && op == opSet
		}}
	}
	for _, tc := range []struct {
		scenario string
		hook     func() *hooks
		check    string
	}{
		{"split-brain", writeBeats, CheckResurrections},
		{"three-region-split-heal", corruptValue, CheckLostWrites},
		{"three-region-split-heal", skipSets, CheckReadYourWrites},
	} {
		var runs []*Result
		for _, procs := range []int{1, 2} {
			prev := runtime.GOMAXPROCS(procs)
			r := runHooked(t, tc.scenario, 1, tc.hook())
			runtime.GOMAXPROCS(prev)
			mustFail(t, r, tc.check)
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
		t.Logf("%s, %s: fingerprint %s, trace %d events (%d violations) sha256 %x, lags %d",
			tc.scenario, tc.check, runs[0].Fingerprint, len(runs[0].Trace), violations, sha256.Sum256(tr), len(runs[0].Lags))
		if violations == 0 {
			t.Fatalf("%s: no violation in the trace", tc.check)
		}
		for i, r := range runs[1:] {
			if r.Fingerprint != runs[0].Fingerprint {
				t.Fatalf("%s: run %d: fingerprint %s, first run %s", tc.check, i+1, r.Fingerprint, runs[0].Fingerprint)
			}
			if !reflect.DeepEqual(r.Trace, runs[0].Trace) {
				t.Fatalf("%s: run %d: trace of %d events differs from the first run's %d", tc.check, i+1, len(r.Trace), len(runs[0].Trace))
			}
			if !reflect.DeepEqual(r.Lags, runs[0].Lags) || fmt.Sprint(r.Violations) != fmt.Sprint(runs[0].Violations) {
				t.Fatalf("%s: run %d: lags or violations differ", tc.check, i+1)
			}
		}
	}
}
