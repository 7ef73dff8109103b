package simulations

import (
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

//go:embed scenarios/*.yaml
var library embed.FS

// Library lists the shipped scenarios by name.
func Library() []string {
	entries, _ := fs.ReadDir(library, "scenarios")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// LoadScenario reads a scenario file, or a shipped one by name when no such
// file exists.
func LoadScenario(arg string) (*Scenario, error) {
	if _, err := os.Stat(arg); err == nil {
		return Load(arg)
	}
	name := strings.TrimSuffix(filepath.Base(arg), ".yaml")
	data, err := library.ReadFile("scenarios/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("simulations: %s: no such file and no shipped scenario of that name (try `sim list`)", arg)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("scenarios/%s.yaml: %w", name, err)
	}
	return sc, nil
}

const usage = `usage:
  sim run SCENARIO [--seed N] [--out DIR]    run once; exit 0 pass, 1 fail, 2 not judged
  sim replay DIR [--out DIR2]                re-run a recorded run; exit 1 unless the fingerprint matches
  sim sweep SCENARIO --seeds 1-1000 [--workers N] [--out DIR]
                                             run many seeds; DIR gets the failing runs
  sim shrink DIR [--out FILE] [--max-runs N] search for a smaller scenario that still fails a
                                             check DIR's run failed, with its seed; writes FILE
                                             (default DIR/shrunk.yaml)
  sim list                                   list the shipped scenarios
SCENARIO is a YAML file or the name of a shipped scenario.
`

// Main is the `sim` command line: args are what follows "sim". It returns
// the exit code: 0 when every expectation holds (or a replay matches), 1
// when one fails, 2 when the run could not be judged or the command is
// wrong.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(args[1:], stdout, stderr)
	case "sweep":
		return cmdSweep(args[1:], stdout, stderr)
	case "shrink":
		return cmdShrink(args[1:], stdout, stderr)
	case "list":
		for _, n := range Library() {
			fmt.Fprintln(stdout, n)
		}
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sim: unknown command %q\n%s", args[0], usage)
	return 2
}

// parseArgs parses flags anywhere among the positional arguments.
// flagError is the exit code for a command line the flags refused: 0 for
// -h (the usage was asked for and printed), 2 for a mistake.
func flagError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// scenarioArg loads the one SCENARIO a command takes, reporting usage
// errors on stderr.
func scenarioArg(cmd string, pos []string, stderr io.Writer) (*Scenario, bool) {
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "sim %s: want one SCENARIO\n%s", cmd, usage)
		return nil, false
	}
	sc, err := LoadScenario(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, false
	}
	return sc, true
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 0, "seed (default: the scenario's, else 1)")
	out := fs.String("out", "", "directory for scenario.yaml, trace.jsonl, verdict.json, metrics.csv, report.html")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	sc, ok := scenarioArg("run", pos, stderr)
	if !ok {
		return 2
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	if !seedSet {
		*seed = max(sc.Seed, 1)
	}
	res, err := Run(sc, *seed)
	if err != nil {
		fmt.Fprintf(stderr, "sim run: %s seed %d could not be judged: %v\n", sc.Name, *seed, err)
		return 2
	}
	fmt.Fprint(stdout, res.Summary())
	if *out != "" {
		if err := res.WriteDir(*out); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		fmt.Fprintf(stdout, "  written to %s (replay: sim replay %s)\n", *out, *out)
	}
	if !res.Verdict.Pass {
		return 1
	}
	return 0
}

// ReadVerdict reads a verdict.json.
func ReadVerdict(path string) (*VerdictFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simulations: %w", err)
	}
	var v VerdictFile
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("simulations: %s: %w", path, err)
	}
	if v.Fingerprint == "" {
		return nil, fmt.Errorf("simulations: %s: no fingerprint", path)
	}
	return &v, nil
}

// Replay re-runs the run recorded in dir (scenario.yaml and verdict.json)
// and reports whether it reproduced the recorded fingerprint.
func Replay(dir string) (*Result, *VerdictFile, error) {
	v, err := ReadVerdict(filepath.Join(dir, FileVerdict))
	if err != nil {
		return nil, nil, err
	}
	sc, err := Load(filepath.Join(dir, FileScenario))
	if err != nil {
		return nil, nil, err
	}
	res, err := Run(sc, v.Seed)
	if err != nil {
		return nil, v, err
	}
	return res, v, nil
}

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the re-run to")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "sim replay: want one DIR\n", usage)
		return 2
	}
	res, v, err := Replay(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "sim replay: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, res.Summary())
	if *out != "" {
		if err := res.WriteDir(*out); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	if res.Fingerprint != v.Fingerprint {
		fmt.Fprintf(stdout, "NOT REPRODUCED: recorded fingerprint %s, replay %s\n", v.Fingerprint, res.Fingerprint)
		now := currentCode()
		switch {
		case v.Code.Same(now):
			fmt.Fprintf(stdout, "same clean commit %s as the recording (and %s on %s): the engine or the code it runs lost determinism\n", now, v.Go, v.GOARCH)
		case v.Code.Commit == "" || now.Commit == "":
			fmt.Fprintf(stdout, "recorded with %s, replayed with %s: cannot tell a code change from non-determinism\n", v.Code, now)
		default:
			fmt.Fprintf(stdout, "recorded with %s, replayed with %s: a code change may explain it\n", v.Code, now)
		}
		if v.Go != runtime.Version() || v.GOARCH != runtime.GOARCH {
			fmt.Fprintf(stdout, "toolchain: recorded %s on %s, now %s on %s\n", v.Go, v.GOARCH, runtime.Version(), runtime.GOARCH)
		}
		return 1
	}
	fmt.Fprintf(stdout, "reproduced: fingerprint %s\n", res.Fingerprint)
	if now := currentCode(); !v.Code.Same(now) {
		fmt.Fprintf(stdout, "recorded with %s, replayed with %s: the change did not alter this run\n", v.Code, now)
	}
	return 0
}

// parseSeeds reads "1-1000", "7" or "1,5,10-20".
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seed %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a {
				return nil, fmt.Errorf("bad seed range %q", part)
			}
		}
		if b-a >= 1_000_000 {
			return nil, fmt.Errorf("seed range %q too large", part)
		}
		for x := a; x <= b; x++ {
			out = append(out, x)
		}
	}
	return out, nil
}

// SweepResult is the outcome of one seed of a sweep.
type SweepResult struct {
	Seed        uint64
	Pass        bool
	Err         error
	Failed      []Check
	Fingerprint string
	Wall        time.Duration
	// Buckets marks the digest buckets the seed's sessions fell in.
	Buckets *[persist.Buckets]bool
}

// Sweep runs sc once per seed, workers runs at a time (GOMAXPROCS when 0),
// and returns the outcomes in the order of seeds. progress, when not nil,
// is called after each run with the number done so far, and keep, when not
// nil, with every failing Result; calls to both are serialised.
func Sweep(sc *Scenario, seeds []uint64, workers int, progress func(done int, r SweepResult), keep func(*Result)) []SweepResult {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	results := make([]SweepResult, len(seeds))
	jobs := make(chan int)
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for range min(workers, len(seeds)) {
		wg.Go(func() {
			for i := range jobs {
				sr := SweepResult{Seed: seeds[i]}
				res, err := Run(sc, seeds[i])
				if err != nil {
					sr.Err = err
				} else {
					sr.Pass, sr.Fingerprint, sr.Wall, sr.Buckets = res.Verdict.Pass, res.Fingerprint, res.Wall, res.Buckets
					for _, c := range res.Verdict.Checks {
						if c.Judged && !c.Pass {
							sr.Failed = append(sr.Failed, c)
						}
					}
				}
				mu.Lock()
				results[i] = sr
				done++
				if keep != nil && res != nil && !res.Verdict.Pass {
					keep(res)
				}
				if progress != nil {
					progress(done, sr)
				}
				mu.Unlock()
			}
		})
	}
	for i := range seeds {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return results
}

func cmdSweep(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seedSpec := fs.String("seeds", "1-100", "seeds: 1-1000, 7 or 1,5,10-20")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "runs in parallel")
	out := fs.String("out", "", "directory to write failing runs to (DIR/seed-N, replayable)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	sc, ok := scenarioArg("sweep", pos, stderr)
	if !ok {
		return 2
	}
	seeds, err := parseSeeds(*seedSpec)
	if err != nil {
		fmt.Fprintf(stderr, "sim sweep: --seeds: %v\n", err)
		return 2
	}
	start := time.Now()
	lastPrint := start
	failing, errored := 0, 0
	// On a terminal the progress line rewrites itself; in a log it is a
	// line every 10 s.
	tty := isTerminal(stderr)
	every := 10 * time.Second
	if tty {
		every = 250 * time.Millisecond
	}
	status := func(done int) string {
		el := time.Since(start)
		rate := float64(done) / el.Seconds()
		eta := "?"
		if done > 0 {
			eta = (time.Duration(float64(len(seeds)-done)/rate) * time.Second).Round(time.Second).String()
		}
		return fmt.Sprintf("sweep %s: %d/%d seeds (%.0f%%), %d failing, %d not judged, %.2f runs/s, elapsed %v, eta %s",
			sc.Name, done, len(seeds), 100*float64(done)/float64(len(seeds)), failing, errored, rate, el.Round(time.Second), eta)
	}
	progress := func(done int, r SweepResult) {
		clearLine := ""
		if tty {
			clearLine = "\r\033[K"
		}
		if r.Err != nil {
			errored++
			fmt.Fprintf(stderr, "%sseed %d: could not be judged: %v\n", clearLine, r.Seed, r.Err)
		} else if !r.Pass {
			failing++
			fmt.Fprintf(stderr, "%sseed %d: FAIL %s\n", clearLine, r.Seed, describeFailed(r.Failed))
		}
		if now := time.Now(); now.Sub(lastPrint) >= every || done == len(seeds) {
			lastPrint = now
			if tty {
				fmt.Fprint(stderr, clearLine+status(done))
				if done == len(seeds) {
					fmt.Fprintln(stderr)
				}
			} else {
				fmt.Fprintln(stderr, status(done))
			}
		}
	}
	if tty {
		fmt.Fprint(stderr, status(0))
	}
	var keepErr error
	keep := func(r *Result) {
		if *out == "" {
			return
		}
		if err := r.WriteDir(filepath.Join(*out, fmt.Sprintf("seed-%d", r.Seed))); err != nil && keepErr == nil {
			keepErr = err
		}
	}
	results := Sweep(sc, seeds, *workers, progress, keep)
	var fails []string
	for _, r := range results {
		if r.Err == nil && !r.Pass {
			fails = append(fails, fmt.Sprintf("  seed %d: %s", r.Seed, describeFailed(r.Failed)))
		}
	}
	fmt.Fprintf(stdout, "%s: %d seeds in %v, %d passed, %d failed, %d not judged\n", sc.Name, len(seeds),
		time.Since(start).Round(time.Millisecond), len(seeds)-failing-errored, failing, errored)
	var covered [persist.Buckets]bool
	n := 0
	for _, r := range results {
		if r.Buckets == nil {
			continue
		}
		for b, in := range r.Buckets {
			if in && !covered[b] {
				covered[b] = true
				n++
			}
		}
	}
	fmt.Fprintf(stdout, "sessions of all seeds fell in %d of the %d digest buckets\n", n, persist.Buckets)
	for _, f := range fails {
		fmt.Fprintln(stdout, f)
	}
	if len(fails) > 0 {
		hint := fmt.Sprintf("sim run %s --seed N --out DIR", pos[0])
		if *out != "" {
			hint = fmt.Sprintf("sim replay %s/seed-N", *out)
		}
		fmt.Fprintf(stdout, "reproduce one with: %s\n", hint)
	}
	if keepErr != nil {
		fmt.Fprintln(stderr, keepErr)
	}
	switch {
	case errored > 0 || keepErr != nil:
		return 2
	case failing > 0:
		return 1
	}
	return 0
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func describeFailed(cs []Check) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s=%s (want %s)", c.Name, c.Measured, c.Expected))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
