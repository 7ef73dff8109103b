package simulations

import (
	"path/filepath"
	"strings"
	"testing"
)

// A failing run shrinks to a smaller scenario that fails the same check
// with the same seed, written as a scenario file that sim run reproduces.
func TestShrinkFindsSmallerFailingScenario(t *testing.T) {
	// A partition healing as the workload stops cannot have converged at
	// once; the crash and the third node are beside the point.
	big := minimal + `faults:
  - {at: 5s, for: 5s, partition: [[a], [b]]}
  - {at: 1s, for: 2s, crash: [a-2]}
  - {at: 2s, for: 1s, degrade: {a: [a], b: [b], loss: 0.1}}
expect: {converge_within: 0s}
`
	dir := filepath.Join(t.TempDir(), "run")
	if code, out, errs := sim(t, "run", writeScenario(t, big), "--seed", "3", "--out", dir); code != 1 {
		t.Fatalf("the big scenario: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := sim(t, "shrink", dir, "--max-runs", "60")
	if code != 0 {
		t.Fatalf("shrink: exit %d\n%s%s", code, out, errs)
	}
	shrunk := filepath.Join(dir, "shrunk.yaml")
	sc, err := Load(shrunk)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Faults) >= 3 && len(r.Nodes) >= 3 && r.Duration >= Duration(10e9) {
		t.Fatalf("nothing shrunk:\n%s", out)
	}
	if sc.Seed != 3 {
		t.Fatalf("shrunk scenario has seed %d, want 3", sc.Seed)
	}
	// It is named and described as what it is, and so is its run.
	if !strings.HasSuffix(sc.Name, "-shrunk") || !strings.Contains(sc.Description, "Shrunk by sim shrink from tiny (seed 3)") || !strings.Contains(out, "FAIL "+sc.Name+" seed=3") {
		t.Fatalf("shrunk scenario %q described %q; output:\n%s", sc.Name, sc.Description, out)
	}
	code, out2, _ := sim(t, "run", shrunk)
	if code != 1 || !strings.Contains(out2, "!! converge_within") {
		t.Fatalf("the shrunk scenario does not fail converge_within: exit %d\n%s", code, out2)
	}
	t.Logf("%s", out)
}

func TestShrinkRefusesPassingRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if code, _, _ := sim(t, "run", writeScenario(t, minimal), "--out", dir); code != 0 {
		t.Fatal("minimal fails")
	}
	if code, _, errs := sim(t, "shrink", dir); code != 2 || !strings.Contains(errs, "nothing to shrink") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
