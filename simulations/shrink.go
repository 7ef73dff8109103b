package simulations

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Shrinking: from a failing run, search for a smaller scenario that still
// fails the same way (one of the checks that failed fails again) with the
// same seed. The search is greedy: it tries, in turn, dropping each fault,
// dropping each node, halving the workload's duration, the quiet period
// and each fault's length, and halving or zeroing each operation rate;
// every candidate that still fails is kept and the passes start again,
// until none helps or the budget of runs is spent. Every candidate is a
// fresh run (another scenario draws other random numbers), so the result
// is a smaller failing scenario, not a minimal one.

// ShrinkResult is the outcome of Shrink.
type ShrinkResult struct {
	// Scenario is the smallest failing scenario found (resolved, Seed
	// set); Result its run.
	Scenario *Scenario
	Result   *Result
	// Checks are the checks the original run failed; Runs how many runs
	// the search made.
	Checks []string
	Runs   int
}

// Shrink searches for a smaller scenario that fails one of the checks sc
// fails with seed. It returns an error if sc passes with seed. maxRuns
// bounds the search (0: 200); progress, when not nil, is told of every
// smaller failing scenario found.
func Shrink(sc *Scenario, seed uint64, maxRuns int, progress func(step string, r *Result)) (*ShrinkResult, error) {
	if maxRuns <= 0 {
		maxRuns = 200
	}
	cur, err := sc.Resolve()
	if err != nil {
		return nil, err
	}
	res, err := Run(cur, seed)
	if err != nil {
		return nil, err
	}
	if res.Verdict.Pass {
		return nil, fmt.Errorf("simulations: %s seed %d passes: nothing to shrink", sc.Name, seed)
	}
	var checks []string
	for _, c := range res.Verdict.Checks {
		if c.Judged && !c.Pass {
			checks = append(checks, c.Name)
		}
	}
	out := &ShrinkResult{Scenario: cur, Result: res, Checks: checks, Runs: 1}
	fails := func(r *Result) bool {
		for _, c := range r.Verdict.Checks {
			if c.Judged && !c.Pass && slices.Contains(checks, c.Name) {
				return true
			}
		}
		return false
	}
	for progressed := true; progressed && out.Runs < maxRuns; {
		progressed = false
		for _, cand := range shrinkCandidates(out.Scenario) {
			if out.Runs >= maxRuns {
				break
			}
			r, err := cand.sc.Resolve()
			if err != nil {
				continue // not a valid scenario: try the next
			}
			out.Runs++
			rr, err := Run(r, seed)
			if err != nil || !fails(rr) {
				continue
			}
			out.Scenario, out.Result = r, rr
			if progress != nil {
				progress(cand.step, rr)
			}
			progressed = true
			break // start again from the smaller scenario
		}
	}
	orig := sc.Name
	out.Scenario.Seed = seed
	out.Scenario.Name = orig + "-shrunk"
	// The original's description no longer says what this one does.
	out.Scenario.Description = fmt.Sprintf("Shrunk by sim shrink from %s (seed %d): a smaller scenario that still fails %s.", orig, seed, strings.Join(out.Checks, ", "))
	if out.Result != nil && out.Result.Scenario != nil {
		out.Result.Scenario.Name = out.Scenario.Name // its summary names the file's scenario
	}
	return out, nil
}

type shrinkCandidate struct {
	step string
	sc   *Scenario
}

// clone deep-copies a scenario (through YAML, which it round-trips).
func (sc *Scenario) clone() *Scenario {
	data, err := sc.yaml()
	if err != nil {
		panic(fmt.Sprintf("simulations: clone scenario: %v", err))
	}
	var c Scenario
	if err := yaml.Unmarshal(data, &c); err != nil {
		panic(fmt.Sprintf("simulations: clone scenario: %v", err))
	}
	return &c
}

// shrinkCandidates lists the one-step reductions of a resolved scenario,
// biggest first.
func shrinkCandidates(sc *Scenario) []shrinkCandidate {
	var out []shrinkCandidate
	add := func(step string, mutate func(c *Scenario) bool) {
		c := sc.clone()
		if mutate(c) {
			out = append(out, shrinkCandidate{step, c})
		}
	}
	for i := range sc.Faults {
		add(fmt.Sprintf("drop faults[%d]", i), func(c *Scenario) bool {
			c.Faults = slices.Delete(c.Faults, i, i+1)
			return true
		})
	}
	for _, n := range sc.Nodes {
		add("drop node "+n.Name, func(c *Scenario) bool { return c.dropNode(n.Name) })
	}
	halve := func(d Duration) Duration { return Duration((d.D() / 2).Truncate(100 * time.Millisecond)) }
	if sc.Duration > Duration(time.Second) {
		add("halve duration", func(c *Scenario) bool { c.Duration = halve(c.Duration); return c.Duration > 0 })
	}
	if sc.Quiet > Duration(time.Second) {
		add("halve quiet", func(c *Scenario) bool { c.Quiet = halve(c.Quiet); return true })
	}
	for i, f := range sc.Faults {
		if f.For != nil && *f.For > Duration(time.Second) {
			add(fmt.Sprintf("halve faults[%d].for", i), func(c *Scenario) bool {
				d := halve(*c.Faults[i].For)
				c.Faults[i].For = &d
				return d > 0
			})
		}
	}
	rates := func(c *Scenario) []*float64 {
		r := &c.Workload.Rates
		return []*float64{&r.Create, &r.Set, &r.Remove, &r.Touch, &r.Renew, &r.Destroy, &r.Read}
	}
	for k, v := range rates(sc) {
		if *v == 0 {
			continue
		}
		add("no "+opNames[k], func(c *Scenario) bool { *rates(c)[k] = 0; return true })
		add("halve "+opNames[k], func(c *Scenario) bool { *rates(c)[k] /= 2; return true })
	}
	// Sample follows the run's length once unset.
	for i := range out {
		out[i].sc.Sample = 0
	}
	return out
}

// dropNode removes a node and every mention of it; a fault left without
// nodes to act on goes too, and so does a region left without nodes.
func (sc *Scenario) dropNode(name string) bool {
	i := slices.IndexFunc(sc.Nodes, func(n NodeSpec) bool { return n.Name == name })
	if i < 0 || len(sc.Nodes) == 1 {
		return false
	}
	sc.Nodes = slices.Delete(sc.Nodes, i, i+1)
	known := map[string]bool{}
	for _, n := range sc.Nodes {
		known[n.Name], known[n.Region] = true, true
	}
	keep := func(sel []string) []string {
		return slices.DeleteFunc(slices.Clone(sel), func(s string) bool { return !known[s] })
	}
	var faults []Fault
	for _, f := range sc.Faults {
		ok := true
		switch {
		case f.Partition != nil:
			var gs [][]string
			for _, g := range f.Partition {
				if g = keep(g); len(g) > 0 {
					gs = append(gs, g)
				}
			}
			f.Partition, ok = gs, len(gs) > 0
		case f.OneWay != nil:
			f.OneWay.From, f.OneWay.To = keep(f.OneWay.From), keep(f.OneWay.To)
			ok = len(f.OneWay.From) > 0 && len(f.OneWay.To) > 0
		case f.Flap != nil:
			f.Flap.A, f.Flap.B = keep(f.Flap.A), keep(f.Flap.B)
			ok = len(f.Flap.A) > 0 && len(f.Flap.B) > 0
		case f.Degrade != nil:
			f.Degrade.A, f.Degrade.B = keep(f.Degrade.A), keep(f.Degrade.B)
			ok = len(f.Degrade.A) > 0 && len(f.Degrade.B) > 0
		case f.Crash != nil:
			f.Crash = keep(f.Crash)
			ok = len(f.Crash) > 0
		case f.Disk != nil:
			f.Disk = keep(f.Disk)
			ok = len(f.Disk) > 0
		case f.Clock != nil:
			f.Clock.Nodes = keep(f.Clock.Nodes)
			ok = len(f.Clock.Nodes) > 0
		}
		if ok {
			faults = append(faults, f)
		}
	}
	sc.Faults = faults
	if sc.Workload.Nodes != nil {
		if sc.Workload.Nodes = keep(sc.Workload.Nodes); len(sc.Workload.Nodes) == 0 {
			return false
		}
	}
	used := map[string]bool{}
	for _, n := range sc.Nodes {
		used[n.Region] = true
	}
	sc.Regions = slices.DeleteFunc(sc.Regions, func(r Region) bool { return !used[r.Name] })
	sc.Latency = slices.DeleteFunc(sc.Latency, func(l Latency) bool {
		return len(l.Between) == 2 && (!used[l.Between[0]] || !used[l.Between[1]])
	})
	return true
}

func cmdShrink(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim shrink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "scenario file to write (default DIR/shrunk.yaml)")
	maxRuns := fs.Int("max-runs", 200, "runs the search may make")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "sim shrink: want one DIR (a failing run, as sim run --out or sim sweep --out write)\n", usage)
		return 2
	}
	dir := pos[0]
	v, err := ReadVerdict(filepath.Join(dir, FileVerdict))
	if err != nil {
		fmt.Fprintf(stderr, "sim shrink: %v\n", err)
		return 2
	}
	sc, err := Load(filepath.Join(dir, FileScenario))
	if err != nil {
		fmt.Fprintf(stderr, "sim shrink: %v\n", err)
		return 2
	}
	before := sizeOf(sc)
	start := time.Now()
	res, err := Shrink(sc, v.Seed, *maxRuns, func(step string, r *Result) {
		fmt.Fprintf(stderr, "  %s: still fails (%s)\n", step, sizeOf(r.Scenario))
	})
	if err != nil {
		fmt.Fprintf(stderr, "sim shrink: %v\n", err)
		return 2
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, "shrunk.yaml")
	}
	data, err := res.Scenario.yaml()
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sim shrink: write %s: %v\n", path, err)
		return 2
	}
	fmt.Fprintf(stdout, "shrunk %s seed %d in %d runs (%v), failing %v:\n  before: %s\n  after:  %s\nwritten to %s (run it: sim run %s)\n",
		sc.Name, v.Seed, res.Runs, time.Since(start).Round(time.Millisecond), res.Checks, before, sizeOf(res.Scenario), path, path)
	fmt.Fprint(stdout, res.Result.Summary())
	return 0
}

// sizeOf describes how big a scenario is.
func sizeOf(sc *Scenario) string {
	r, err := sc.Resolve()
	if err != nil {
		r = sc
	}
	ops := 0.0
	for _, v := range []float64{r.Workload.Rates.Create, r.Workload.Rates.Set, r.Workload.Rates.Remove, r.Workload.Rates.Touch,
		r.Workload.Rates.Renew, r.Workload.Rates.Destroy, r.Workload.Rates.Read} {
		ops += v
	}
	return fmt.Sprintf("%d nodes, %d faults, %.3g ops/s per node, %v + %v quiet", len(r.Nodes), len(r.Faults), ops, r.Duration, r.Quiet)
}
