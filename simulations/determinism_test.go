package simulations

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "regenerate testdata/replay from a fresh run")

// The same scenario and seed give the same run, bit for bit; another seed
// gives another run.
func TestSameSeedSameFingerprint(t *testing.T) {
	sc, err := LoadScenario("crash-restart")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Run(sc, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(sc, 7)
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint {
		t.Fatalf("same seed, different fingerprints: %s and %s", a.Fingerprint, b.Fingerprint)
	}
	if len(a.Trace) != len(b.Trace) {
		t.Fatalf("same seed, traces of %d and %d events", len(a.Trace), len(b.Trace))
	}
	c, err := Run(sc, 8)
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint == a.Fingerprint {
		t.Fatal("the seed has no effect")
	}
}

// A run stored in testdata/replay reproduces its fingerprint. It breaks,
// on purpose, whenever node, persist or crdt change what they do: check
// that the change is meant, then regenerate with
//
//	go test ./simulations -run TestReplayStoredRun -rewrite
func TestReplayStoredRun(t *testing.T) {
	dir := filepath.Join("testdata", "replay")
	if *rewrite {
		sc, err := LoadScenario("crash-restart")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(sc, 42)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, write := range map[string]func(*os.File) error{
			FileScenario: func(f *os.File) error { return res.WriteScenario(f) },
			FileVerdict:  func(f *os.File) error { return res.WriteVerdict(f) },
		} {
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := write(f); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("rewrote %s: fingerprint %s", dir, res.Fingerprint)
	}
	v, err := ReadVerdict(filepath.Join(dir, FileVerdict))
	if err != nil {
		t.Fatal(err)
	}
	if v.GOARCH != runtime.GOARCH {
		t.Skipf("recorded on %s: floating-point results (and so the run) may differ on %s", v.GOARCH, runtime.GOARCH)
	}
	res, v, err := Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fingerprint != v.Fingerprint {
		t.Fatalf("replay of %s gave fingerprint %s, recorded %s.\n"+
			"node, persist or crdt changed behaviour, or the engine lost determinism. If the change is meant:\n"+
			"\tgo test ./simulations -run TestReplayStoredRun -rewrite", dir, res.Fingerprint, v.Fingerprint)
	}
	if res.Verdict.Pass != v.Pass {
		t.Fatalf("same fingerprint, different verdict")
	}
}

// Partial replication is as deterministic: a run of partial-churn-small
// (placement from hellos, handoffs, drops, non-holder reads through the
// network) replayed from its directory gives the same fingerprint and the
// same trace, byte for byte.
func TestPartialReplayIdentical(t *testing.T) {
	sc, err := LoadScenario("partial-churn-small")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Run(sc, 2)
	if err != nil {
		t.Fatal(err)
	}
	if a.Figures.Partial == nil || a.Figures.Partial.RemoteReads == 0 || a.Figures.Partial.Drops == 0 {
		t.Fatalf("partial replication did not run: %+v", a.Figures.Partial)
	}
	dir := t.TempDir()
	if err := a.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	b, v, err := Replay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Fingerprint != a.Fingerprint || v.Fingerprint != a.Fingerprint {
		t.Fatalf("replay gave fingerprint %s, the run %s (recorded %s)", b.Fingerprint, a.Fingerprint, v.Fingerprint)
	}
	var ta, tb bytes.Buffer
	if err := a.WriteTrace(&ta); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteTrace(&tb); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ta.Bytes(), tb.Bytes()) {
		t.Fatalf("same seed, different traces (%d and %d bytes)", ta.Len(), tb.Len())
	}
}

// steadyHourFingerprint is the fingerprint of the speed benchmark's run
// (testdata/steady-hour.yaml, seed 1) on amd64.
const steadyHourFingerprint = "ea83e98bf578f15f92f941952dca7ff8387c2bb4f01eaf3bae7650b0cd14f404"

// The run BenchmarkSteadyHour times is the one it has always been: work on
// the simulator's speed (or on the node code it drives) must leave every
// delivery, tick, operation and final digest as they were. If a change of
// behaviour is meant, say so and update the constant.
func TestSteadyHourFingerprint(t *testing.T) {
	if testing.Short() {
		t.Skip("an hour simulated takes seconds; run without -short")
	}
	if runtime.GOARCH != "amd64" {
		t.Skipf("pinned on amd64: floating-point results (and so the run) may differ on %s", runtime.GOARCH)
	}
	sc, err := Load("testdata/steady-hour.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verdict.Pass {
		t.Fatalf("the steady hour fails:\n%s", res.Summary())
	}
	if res.Fingerprint != steadyHourFingerprint {
		t.Fatalf("steady hour, seed 1: fingerprint %s, pinned %s", res.Fingerprint, steadyHourFingerprint)
	}
}
