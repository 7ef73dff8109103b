package simulations

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeScenario(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sim(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestMainRunWritesEverythingAndReplays(t *testing.T) {
	path := writeScenario(t, minimal+"expect: {lost_writes: 0, resurrections: 0}\n")
	dir := filepath.Join(t.TempDir(), "run")
	code, out, errs := sim(t, "run", path, "--seed", "5", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, f := range []string{FileScenario, FileTrace, FileVerdict, FileMetrics, FileReport} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	v, err := ReadVerdict(filepath.Join(dir, FileVerdict))
	if err != nil {
		t.Fatal(err)
	}
	if v.Seed != 5 || !v.Pass || len(v.Fingerprint) != 64 {
		t.Fatalf("verdict %+v", v)
	}
	report, _ := os.ReadFile(filepath.Join(dir, FileReport))
	if n := bytes.Count(report, []byte("<svg")); n != 2 || bytes.Contains(report, []byte("<script")) || bytes.Contains(report, []byte("http://ww.")) {
		t.Fatalf("report has %d plots", n)
	}
	trace, _ := os.ReadFile(filepath.Join(dir, FileTrace))
	first, _, _ := bytes.Cut(trace, []byte("\n"))
	var ev TraceEvent
	if err := json.Unmarshal(first, &ev); err != nil || ev.Kind == "" {
		t.Fatalf("trace line %q: %v", first, err)
	}

	if code, out, errs := sim(t, "replay", dir); code != 0 || !strings.Contains(out, "reproduced") {
		t.Fatalf("replay exit %d\n%s%s", code, out, errs)
	}
	// A tampered fingerprint is not reproduced.
	data, _ := os.ReadFile(filepath.Join(dir, FileVerdict))
	data = bytes.Replace(data, []byte(v.Fingerprint), []byte(strings.Repeat("0", 64)), 1)
	if err := os.WriteFile(filepath.Join(dir, FileVerdict), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := sim(t, "replay", dir); code != 1 || !strings.Contains(out, "NOT REPRODUCED") {
		t.Fatalf("tampered replay exit %d\n%s", code, out)
	}
}

func TestMainExitCodes(t *testing.T) {
	// The partition heals as the workload stops: nothing can have
	// converged at that very instant.
	failing := writeScenario(t, minimal+"faults: [{at: 5s, for: 5s, partition: [[a]]}]\nexpect: {converge_within: 0s}\n")
	if code, out, errs := sim(t, "run", failing, "--seed", "1"); code != 1 || !strings.Contains(out, "FAIL") {
		t.Fatalf("failing run: exit %d\n%s%s", code, out, errs)
	}
	bad := writeScenario(t, minimal+"oops: 1\n")
	if code, _, errs := sim(t, "run", bad); code != 2 || !strings.Contains(errs, "field oops not found") {
		t.Fatalf("bad scenario: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"run"}, {"run", "a", "b"}, {"sweep", "x", "--seeds", "9-1"}, {"replay", t.TempDir()}} {
		if code, _, _ := sim(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, out, _ := sim(t, "list"); code != 0 || !strings.Contains(out, "mesh-50-churn") {
		t.Fatalf("list: exit %d: %s", code, out)
	}
}

func TestMainSweep(t *testing.T) {
	path := writeScenario(t, minimal+"faults: [{at: 5s, for: 5s, partition: [[a]]}]\nexpect: {lost_writes: 0, converge_within: 0s}\n")
	dir := t.TempDir()
	code, out, errs := sim(t, "sweep", path, "--seeds", "1-6", "--workers", "3", "--out", dir)
	if !strings.Contains(errs, "6/6 seeds") {
		t.Errorf("no progress line on stderr: %q", errs)
	}
	// converge_within 0s fails: the sweep must name the seeds, and the
	// runs it wrote must replay.
	if code != 1 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "digest buckets") {
		t.Errorf("no bucket coverage across seeds:\n%s", out)
	}
	if !strings.Contains(out, "seed ") || !strings.Contains(out, "sim replay") {
		t.Fatalf("sweep output does not name failing seeds:\n%s", out)
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
	if len(runs) == 0 {
		t.Fatal("no failing run written")
	}
	if code, out, _ := sim(t, "replay", runs[0]); code != 0 {
		t.Fatalf("replay of %s: exit %d\n%s", runs[0], code, out)
	}
}

func TestParseSeeds(t *testing.T) {
	got, err := parseSeeds("1-3,7, 10-11")
	if err != nil || len(got) != 6 || got[0] != 1 || got[3] != 7 || got[5] != 11 {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", "x", "3-1", "1-", "0-2000000"} {
		if _, err := parseSeeds(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
