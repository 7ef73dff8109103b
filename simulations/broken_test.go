package simulations

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A checker that cannot fail proves nothing. These tests break the merge
// in flight, through a test-only engine hook, in the ways a buggy crdt
// could, and require the matching checker to notice.

// entriesMsg mirrors node's anti-entropy entries message (wire.go), so that
// the hook can rewrite the sessions it carries as well as gossip's.
type entriesMsg struct {
	_msgpack      struct{} `msgpack:",as_array"`
	Round         uint64
	FromInitiator bool
	Seq           uint32
	Payload       uint8 // 1: a bucket summary, no sessions
	Buckets       []int
	After         string
	Upto          string
	Batch         []byte
}

// rewriteSessions returns a hook that passes every session in flight to
// node `to` through fn (nil drops it), in gossip and anti-entropy alike.
func rewriteSessions(t *testing.T, fn func(e *engine, to int, s *crdt.Session) *crdt.Session) *hooks {
	limits := crdt.DefaultLimits()
	batch := func(e *engine, to int, data []byte) []byte {
		b, err := crdt.UnmarshalBatch(data, limits)
		if err != nil {
			t.Errorf("hook: %v", err)
			return data
		}
		out := crdt.NewBatch()
		for _, s := range b.Sessions() {
			if s = fn(e, to, s.Clone()); s != nil {
				out.Add(s)
			}
		}
		enc, err := crdt.MarshalBatch(out, limits)
		if err != nil {
			t.Errorf("hook: %v", err)
			return data
		}
		return enc
	}
	return &hooks{rewrite: func(e *engine, from, to int, gossip bool, data []byte) []byte {
		if gossip {
			return batch(e, to, data)
		}
		if len(data) < 2 || data[1] != 'E' {
			return data
		}
		var m entriesMsg
		if err := msgpack.Unmarshal(data[2:], &m); err != nil {
			t.Errorf("hook: entries: %v", err)
			return data
		}
		if m.Payload == 1 {
			return data
		}
		m.Batch = batch(e, to, m.Batch)
		var buf bytes.Buffer
		buf.Write(data[:2])
		if err := msgpack.NewEncoder(&buf).Encode(&m); err != nil {
			t.Errorf("hook: entries: %v", err)
			return data
		}
		return buf.Bytes()
	}}
}

// writeBeatsDestroy returns a hook that drops a tombstone in flight to a
// node holding a write newer than the destroy: last writer wins between
// them instead of destroy being final.
func writeBeatsDestroy(t *testing.T) *hooks {
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
				return nil // the newer write "wins": the tombstone is ignored
			}
		}
		if cur.LastAccess > s.Destroyed.Millis() {
			return nil
		}
		return s
	})
}

// corruptValuesTo returns a hook that prefixes every live value in flight
// to the node named to with a byte that wins every tie-break.
func corruptValuesTo(t *testing.T, to string) *hooks {
	return rewriteSessions(t, func(e *engine, n int, s *crdt.Session) *crdt.Session {
		if e.nodes[n].name != to || s.IsDestroyed() {
			return s
		}
		for k, f := range s.Fields.All() {
			if !f.Removed && !strings.HasPrefix(f.Value, "\xff") {
				f.Value = "\xff" + f.Value
				s.Fields = s.Fields.With(k, f)
			}
		}
		return s
	})
}

// splitBrain is a partition with clients that roam across it and keep
// using sessions after destroying them: writes after a destroy, on the
// other side, are common.
const splitBrain = `
name: split-brain
duration: 2m
quiet: 30s
regions: [{name: east}, {name: west}]
latency: [{between: [east, west], delay: 50ms, jitter: 10ms}]
nodes: [{region: east, count: 2}, {region: west, count: 2}]
config: {sync_interval: 5s}
workload:
  rates: {create: 2, set: 6, touch: 1, destroy: 1, read: 4}
  roam: 0.5
  linger: 1m
faults: [{at: 20s, for: 1m, partition: [[east], [west]]}]
expect: {converge_within: 10s, lost_writes: 0, resurrections: 0, expired_served: 0, read_your_writes_violations: 0}
`

func runHooked(t *testing.T, name string, seed uint64, h *hooks) *Result {
	t.Helper()
	var sc *Scenario
	var err error
	if name == "split-brain" {
		sc, err = Parse([]byte(splitBrain))
	} else {
		sc, err = LoadScenario(name)
	}
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(sc, seed, h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func checkOf(t *testing.T, r *Result, name string) Check {
	t.Helper()
	for _, c := range r.Verdict.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %s", name)
	return Check{}
}

// mustFail requires the run to fail, and check name among its failures.
func mustFail(t *testing.T, r *Result, name string) {
	t.Helper()
	c := checkOf(t, r, name)
	if r.Verdict.Pass || !c.Judged || c.Pass {
		t.Fatalf("the %s checker did not catch the broken merge: %+v\n%s", name, c, r.Summary())
	}
	found := false
	for _, v := range r.Violations {
		found = found || v.Check == name
	}
	if name != CheckConvergence && !found {
		t.Fatalf("%s failed without an example violation", name)
	}
	t.Logf("caught: %s = %s (%d example(s))", name, c.Measured, len(r.Violations))
}

// A merge where a later write beats a destroy (last writer wins between
// them instead of destroy being final).
func TestBrokenMergeWriteBeatsDestroyIsCaught(t *testing.T) {
	if r := runHooked(t, "split-brain", 1, nil); !r.Verdict.Pass {
		t.Fatalf("the scenario fails without the broken merge:\n%s", r.Summary())
	}
	r := runHooked(t, "split-brain", 1, writeBeatsDestroy(t))
	mustFail(t, r, CheckResurrections)
	mustFail(t, r, CheckConvergence)
}

// A merge that keeps the wrong value on a timestamp tie (here: a value
// corrupted in flight to ap-1 that wins every tie-break). The mesh even
// converges, on the wrong value: only the lost-write checker can tell.
func TestBrokenMergeCorruptValueIsCaught(t *testing.T) {
	r := runHooked(t, "three-region-split-heal", 1, corruptValuesTo(t, "ap-1"))
	mustFail(t, r, CheckLostWrites)
	if c := checkOf(t, r, CheckConvergence); !c.Pass {
		t.Logf("convergence also failed: %s", c.Measured)
	}
}

// A merge that extends deadlines and idle timeouts: sessions outlive their
// expiry on the node that took the bad state.
func TestBrokenMergeExtendedExpiryIsCaught(t *testing.T) {
	h := rewriteSessions(t, func(e *engine, to int, s *crdt.Session) *crdt.Session {
		if e.nodes[to].name != "east-1" || s.IsDestroyed() {
			return s
		}
		// Not LastAccess: a stamp that far ahead would be deferred.
		s.Absolute += time.Hour.Milliseconds()
		s.Idle += time.Hour.Milliseconds()
		return s
	})
	r := runHooked(t, "partition-beyond-lifetime", 1, h)
	mustFail(t, r, CheckExpiredServed)
}

// A node that acknowledges writes it never stored breaks read-your-writes
// (and loses them).
func TestBrokenStoreReadYourWritesIsCaught(t *testing.T) {
	h := &hooks{skipApply: func(e *engine, n int, op opKind) bool {
		return e.nodes[n].name == "us-1" && op == opSet
	}}
	r := runHooked(t, "three-region-split-heal", 1, h)
	mustFail(t, r, CheckReadYourWrites)
	mustFail(t, r, CheckLostWrites)
}

// plantedSeeds bounds how many seeds a planted bug may take to be caught
// (planted_test.go).
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
