package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// row is one line of the table: a figure for sessionmesh, the same figure
// for Redis, and their ratio. A nil figure is "not applicable".
type row struct {
	Section string   `json:"section"`
	Measure string   `json:"measure"`
	Unit    string   `json:"unit"`
	SM      *float64 `json:"sessionmesh"`
	Redis   *float64 `json:"redis"`
	// Ratio is sessionmesh ÷ Redis: the median of per-round ratios when the
	// figures come from interleaved rounds, else the ratio of the figures.
	Ratio    *float64 `json:"ratio"`
	SMSetup  string   `json:"sessionmesh_setup,omitempty"`
	RedisSet string   `json:"redis_setup,omitempty"`
	Target   string   `json:"target,omitempty"`
	Standing string   `json:"standing,omitempty"`
	// Rounds holds the per-round figures, sessionmesh then Redis.
	SMRounds    []float64 `json:"sessionmesh_rounds,omitempty"`
	RedisRounds []float64 `json:"redis_rounds,omitempty"`
}

func num(v float64) *float64 { return &v }

// report gathers rows and details as the phases run.
type report struct {
	mu       sync.Mutex
	Mode     string         `json:"mode"`
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"`
	Machine  map[string]any `json:"machine"`
	Settings map[string]any `json:"settings"`
	Rows     []row          `json:"rows"`
	Details  map[string]any `json:"details"`
	Notes    []string       `json:"notes"`
	Errors   []string       `json:"errors,omitempty"`
}

func newReport(mode string) *report {
	return &report{Mode: mode, Started: time.Now(), Machine: map[string]any{}, Settings: map[string]any{}, Details: map[string]any{}}
}

func (r *report) add(rw row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, rw)
	printRow(os.Stdout, rw)
}

func (r *report) detail(key string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Details[key] = v
}

func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *report) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Errors = append(r.Errors, err.Error())
}

// fmtNum prints a figure with about three significant digits.
func fmtNum(p *float64) string {
	if p == nil {
		return "n/a"
	}
	v := *p
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3g", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

func fmtRatio(p *float64) string {
	if p == nil {
		return "—"
	}
	v := *p
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 0.1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f (1/%.0f)", v, 1/v)
	}
}

func printRow(w *os.File, rw row) {
	fmt.Fprintf(w, "  %-58s %12s %12s %14s  %s\n", rw.Measure+" ("+rw.Unit+")", fmtNum(rw.SM), fmtNum(rw.Redis), fmtRatio(rw.Ratio), rw.Standing)
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sessionmesh against Redis, %s (%s run)\n\n", r.Started.Format("2006-01-02 15:04 MST"), r.Mode)
	fmt.Fprintf(&b, "Written by `bench/run%s`; the same figures are in the `.json` beside this file, with every round. ", map[bool]string{true: " --quick", false: ""}[r.Mode == "quick"])
	fmt.Fprintf(&b, "Machine: %v cores (%v), %v RAM, %v, %v, Redis %v; load average %v at the start, %v at the end (other work shares the machine). Run took %.0f s.\n\n",
		r.Machine["cores"], r.Machine["cpu"], r.Machine["memory"], r.Machine["kernel"], r.Machine["go"], r.Machine["redis"], r.Machine["loadavg_at_start"], r.Machine["loadavg_at_end"], r.Seconds)
	b.WriteString("Every figure is the median over interleaved rounds (the contenders run in turn, in a rotating order); " +
		"the ratio is sessionmesh ÷ Redis, the median of the per-round ratios where there are rounds. " +
		"Latencies in µs unless the unit says otherwise. For latencies and memory a ratio below 1 favours sessionmesh; for rates, above 1.\n\n")
	b.WriteString("| measure | unit | sessionmesh | Redis | ratio | setup (sessionmesh / Redis) | target / where we stand |\n")
	b.WriteString("|---|---|--:|--:|--:|---|---|\n")
	section := ""
	for _, rw := range r.Rows {
		if rw.Section != section {
			section = rw.Section
			fmt.Fprintf(&b, "| **%s** | | | | | | |\n", cell(section))
		}
		setup := rw.SMSetup
		if rw.RedisSet != "" {
			setup += " / " + rw.RedisSet
		}
		tgt := rw.Target
		if rw.Standing != "" {
			if tgt != "" {
				tgt += ": "
			}
			tgt += rw.Standing
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", cell(rw.Measure), cell(rw.Unit), fmtNum(rw.SM), fmtNum(rw.Redis), fmtRatio(rw.Ratio), cell(setup), cell(tgt))
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n## Errors\n\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	b.WriteString("\n## Settings\n\n")
	for _, k := range sortedKeys(r.Settings) {
		v := r.Settings[k]
		if _, ok := v.(string); !ok {
			if js, err := json.Marshal(v); err == nil {
				v = "`" + string(js) + "`"
			}
		}
		fmt.Fprintf(&b, "- %s: %v\n", k, v)
	}
	return b.String()
}

// write stores the report as <out>/<name>.md and .json.
func (r *report) write(out, name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Seconds = time.Since(r.Started).Seconds()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	md := filepath.Join(out, name+".md")
	if err := os.WriteFile(md, []byte(r.markdown()), 0o644); err != nil {
		return "", err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return md, os.WriteFile(filepath.Join(out, name+".json"), append(js, '\n'), 0o644)
}
