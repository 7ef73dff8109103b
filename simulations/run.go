package simulations

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Run resolves the scenario and runs it with the given seed. An error means
// the run could not be judged (an invalid scenario, a store failure); a run
// that breaks a promise returns a Result whose Verdict fails.
func Run(sc *Scenario, seed uint64) (*Result, error) {
	return run(sc, seed, nil)
}

func run(sc *Scenario, seed uint64, h *hooks) (*Result, error) {
	r, err := sc.Resolve()
	if err != nil {
		return nil, err
	}
	r.Seed = seed
	start := time.Now()
	e, err := newEngine(r, seed, h)
	if err != nil {
		return nil, err
	}
	defer e.close()
	e.run()
	if e.err != nil {
		return nil, e.err
	}
	res := e.result()
	res.Wall = time.Since(start)
	return res, nil
}

// Files written by WriteDir.
const (
	FileScenario = "scenario.yaml"
	FileTrace    = "trace.jsonl"
	FileVerdict  = "verdict.json"
	FileMetrics  = "metrics.csv"
	FileReport   = "report.html"
)

// WriteDir writes the resolved scenario, trace.jsonl, verdict.json,
// metrics.csv and report.html into dir, creating it.
func (r *Result) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("simulations: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(*os.File) error
	}{
		{FileScenario, func(f *os.File) error { return r.WriteScenario(f) }},
		{FileTrace, func(f *os.File) error { return r.WriteTrace(f) }},
		{FileVerdict, func(f *os.File) error { return r.WriteVerdict(f) }},
		{FileMetrics, func(f *os.File) error { return r.WriteMetrics(f) }},
		{FileReport, func(f *os.File) error { return r.WriteReport(f) }},
	} {
		path := filepath.Join(dir, f.name)
		file, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("simulations: %w", err)
		}
		err = f.write(file)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("simulations: write %s: %w", path, err)
		}
	}
	return nil
}
