package simulations

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// Result is the outcome of a run.
type Result struct {
	// Scenario is the resolved scenario that ran (Seed set to the run's).
	Scenario *Scenario
	Seed     uint64
	Verdict  Verdict
	Figures  Figures
	// Fingerprint is a SHA-256 over the event trace (every delivery,
	// tick, operation and fault; not the checkers' findings) and every
	// node's final digests: the same scenario and seed give the same
	// fingerprint.
	Fingerprint string
	// Trace lists operations, faults, connection changes and violations;
	// message deliveries are in the fingerprint, not here.
	Trace  []TraceEvent
	Series []Sample
	Faults []FaultPeriod
	// Lags are replication lags in seconds, sorted: for every
	// acknowledged write and every node running when it was acknowledged,
	// the true time until that node held it or something newer.
	Lags       []float64
	Violations []Violation
	// Wall is how long the run took.
	Wall time.Duration
	// Buckets marks the digest buckets the run's sessions fell in.
	Buckets *[persist.Buckets]bool
}

// VersionedStats counts the requests of clients carrying versions:
// served, answered stale (the node did not reach the version within the
// bound), finding their session gone (revoked or expired), and sessions
// they created.
type VersionedStats struct {
	Served   int64 `json:"served"`
	Stale    int64 `json:"stale"`
	NotFound int64 `json:"not_found"`
	Creates  int64 `json:"creates"`
}

// Verdict says whether the run kept the scenario's promises.
type Verdict struct {
	// Pass is set when every judged check passed.
	Pass   bool    `json:"pass"`
	Checks []Check `json:"checks"`
}

// Check is one expectation and what the run measured.
type Check struct {
	Name     string  `json:"name"`
	Judged   bool    `json:"judged"`
	Pass     bool    `json:"pass"`
	Expected string  `json:"expected,omitempty"`
	Measured string  `json:"measured"`
	Value    float64 `json:"value"`
}

// Figures are the run's measurements.
type Figures struct {
	Simulated float64 `json:"simulated_seconds"`
	// Settle is when the workload had stopped and every fault healed;
	// Heal when the last fault healed (or the last late joiner started;
	// without either, the end of the workload); Converge the time from the
	// heal until the mesh had repaired what diverged (see
	// Expect.ConvergeWithin; -1: not converged by the end).
	Settle   float64 `json:"settle_seconds"`
	Heal     float64 `json:"heal_seconds"`
	Converge float64 `json:"converge_seconds"`
	// Reconnect is the time from the heal until every two running nodes
	// were connected again (-1: not by the end).
	Reconnect float64 `json:"reconnect_seconds"`
	// Channels counts traffic per channel: gossip data and the four
	// anti-entropy message kinds.
	Channels map[string]ChannelStats `json:"channels"`
	Messages int64                   `json:"messages"`
	Bytes    int64                   `json:"bytes"`
	// Writes are acknowledged client writes (everything but reads);
	// BytesPerWrite is all traffic over them.
	Writes        int64   `json:"writes"`
	BytesPerWrite float64 `json:"bytes_per_write"`
	// Lag percentiles in seconds over Result.Lags.
	LagP50 float64 `json:"lag_p50_seconds"`
	LagP90 float64 `json:"lag_p90_seconds"`
	LagP99 float64 `json:"lag_p99_seconds"`
	LagMax float64 `json:"lag_max_seconds"`
	// Sessions is the number of sessions created; Buckets how many of the
	// persist.Buckets digest buckets they fall in (ids are hashes of
	// seeded tokens, as in production, so every seed covers others).
	Sessions int64 `json:"sessions"`
	Buckets  int   `json:"buckets"`
	// Ops per kind.
	Ops         map[string]OpStats `json:"ops"`
	Unavailable int64              `json:"unavailable"`
	// Unreplicated (write, running node) pairs at the end, and writes
	// that only a node down at the end ever held (not judged).
	// SilentlyCovered counts pairs found held by a look at the stores
	// rather than followed by a change event (a write merged into a
	// newer state changes nothing): they are not in the lag figures.
	Unreplicated    int64 `json:"unreplicated"`
	SilentlyCovered int64 `json:"silently_covered"`
	Stranded        int64 `json:"stranded"`
	// Versioned counts the requests of clients carrying versions
	// (Workload.Consistency).
	Versioned VersionedStats `json:"versioned"`
	// Core lists the cores' counters (sync rounds by result, deferred and
	// rejected deltas by reason, sessions collected).
	Core        map[string]float64 `json:"core"`
	Events      int64              `json:"events"`
	Ticks       int64              `json:"ticks"`
	Connects    int64              `json:"connects"`
	Disconnects int64              `json:"disconnects"`
	Rejected    int64              `json:"rejected_messages"`
	// DeferredStranded counts deferred deltas applied more than 2 s after
	// the drift bound admitted them, or never (stranded in a deferred
	// queue, or dropped from a full one); MergeViolations the sessions
	// whose deltas merge differently in different orders, or whose
	// replicas differ from that merge.
	DeferredStranded int64 `json:"deferred_stranded"`
	MergeViolations  int64 `json:"merge_violations"`
	// AllowedLost counts writes acknowledged under durability none that a
	// power loss may lose (not judged as lost); DiskErrors the store calls
	// a disk fault failed: clients' writes and batches from peers alike.
	AllowedLost int64 `json:"allowed_lost"`
	DiskErrors  int64 `json:"disk_errors"`
	// Divergence while faults were active (reported, not judged): the
	// most distinct digests and unreplicated pairs in any sample.
	FaultPeakDigests      int   `json:"fault_peak_digests"`
	FaultPeakUnreplicated int64 `json:"fault_peak_unreplicated"`
	// Partial is partial replication's figures (nil under full
	// replication).
	Partial *PartialStats `json:"partial,omitempty"`
}

// PartialStats describes a run under partial replication.
type PartialStats struct {
	Replicas int `json:"replicas"`
	// RemoteReads are client reads of a session their node did not hold
	// (one hop to its holders); NoHolder those with no holder connected
	// (answered from the node's own copy), TimedOut those some holder
	// did not answer within ConsistencyWait.
	RemoteReads int64 `json:"remote_reads"`
	NoHolder    int64 `json:"remote_reads_no_holder"`
	TimedOut    int64 `json:"remote_reads_timed_out"`
	// Drops are sessions dropped after a handoff; UnsafeDrops those that
	// left their region with fewer than R other copies.
	Drops       int64 `json:"drops"`
	UnsafeDrops int64 `json:"unsafe_drops"`
	// SessionsJudged are the live sessions the holders check looked at;
	// CopiesPerRegion their average number of complete copies in each
	// region at the end (R when placement is met exactly);
	// UnderReplicated the (session, region) pairs below min(R, running).
	SessionsJudged  int64              `json:"sessions_judged"`
	CopiesPerRegion map[string]float64 `json:"copies_per_region"`
	UnderReplicated int64              `json:"under_replicated"`
	// Probes are the reads of every session on a node that does not hold
	// it, 2 s before the end, that a holder answered; StaleProbes those
	// that missed an acknowledged write (or showed a destroyed session).
	Probes      int64 `json:"probes"`
	StaleProbes int64 `json:"stale_probes"`
}

// OpStats counts one kind of operation.
type OpStats struct {
	Attempted int64 `json:"attempted"`
	Acked     int64 `json:"acked"`
	Missed    int64 `json:"missed"`
}

// TraceEvent is one line of trace.jsonl.
type TraceEvent struct {
	T       Duration `json:"t"`
	Kind    string   `json:"kind"`
	Node    string   `json:"node,omitempty"`
	Peer    string   `json:"peer,omitempty"`
	Op      string   `json:"op,omitempty"`
	Session string   `json:"session,omitempty"`
	Key     string   `json:"key,omitempty"`
	Result  string   `json:"result,omitempty"`
	Fault   string   `json:"fault,omitempty"`
	Detail  string   `json:"detail,omitempty"`
}

// result assembles the Result once the engine has run.
func (e *engine) result() *Result {
	c := e.chk
	// The run's events are all in: the checkers below only add violations
	// to the trace. What the trace and the lags make (the Result's copy of
	// the trace, the sorted lags, the fingerprint) is worked out on
	// another core meanwhile, from frozen views, and joined before use;
	// the rest of the trace follows once the checkers are done.
	trace, lags := e.trace.frozen(), c.lags.frozen()
	var wg sync.WaitGroup
	var events []TraceEvent
	var sorted []float64
	wg.Go(func() {
		// Room for the violations to come (maxExamples per check).
		events = trace.appendFrom(make([]TraceEvent, 0, trace.len()+16*maxExamples), 0)
	})
	wg.Go(func() { sorted = sortedSeconds(&lags) })
	wg.Go(func() {
		e.fp.Write(e.fpBuf)
		// Violations are the checkers' judgement, not events: a change
		// to a checker does not change the fingerprint of a run.
		trace.encode(e.fp, 0, "violation")
	})
	c.sweep()
	c.final()
	c.finalDeferrals()
	c.mergeDeterminism()
	e.cw.final()
	if e.convergedAt < 0 {
		e.explainDivergence()
	}
	wg.Wait()
	e.fpBuf = nil
	if lags.len() != c.lags.len() {
		sorted = sortedSeconds(&c.lags) // not expected: a checker added lags
	}
	r := &Result{Scenario: e.sc, Seed: e.seed, Trace: e.trace.appendFrom(events, trace.len()), Series: e.series, Faults: e.faults}
	r.Lags = sorted
	f := &r.Figures
	f.Simulated = time.Duration(e.end).Seconds()
	f.Settle = time.Duration(e.settle).Seconds()
	f.Heal = time.Duration(e.heal).Seconds()
	f.Reconnect = -1
	if e.reconnectedAt >= 0 {
		f.Reconnect = time.Duration(e.reconnectedAt - e.heal).Seconds()
	}
	f.Converge = -1
	if e.convergedAt >= 0 {
		at := e.convergedAt
		if e.healCover {
			// Traffic went on past the heal: the digests agreed only
			// once it stopped, which says nothing of the repair.
			if t, ok := c.healConverged(); ok {
				at = t
			}
		}
		f.Converge = time.Duration(at - e.heal).Seconds()
	}
	f.Channels = map[string]ChannelStats{}
	for ch, st := range e.stats.channels {
		f.Channels[channelNames[ch]] = st
		f.Messages += st.Sent
		f.Bytes += st.Bytes
	}
	f.Ops = map[string]OpStats{}
	for k := range numOps {
		f.Ops[opNames[k]] = OpStats{Attempted: e.wl.attempted[k], Acked: e.wl.acked[k], Missed: e.wl.missed[k]}
	}
	f.Writes = e.wl.writes()
	if f.Writes > 0 {
		f.BytesPerWrite = float64(f.Bytes) / float64(f.Writes)
	}
	f.LagP50, f.LagP90, f.LagP99 = quantile(r.Lags, 0.5), quantile(r.Lags, 0.9), quantile(r.Lags, 0.99)
	if len(r.Lags) > 0 {
		f.LagMax = r.Lags[len(r.Lags)-1]
	}
	f.Unavailable = e.wl.unavailable
	for _, k := range e.wl.made {
		f.Sessions += int64(k)
	}
	bk := e.wl.buckets // a copy: the run's workload is not kept alive
	r.Buckets = &bk
	for _, b := range e.wl.buckets {
		if b {
			f.Buckets++
		}
	}
	f.Unreplicated = c.unreplicated()
	f.SilentlyCovered = c.silent
	f.Stranded = c.stranded
	f.Core = e.stats.core.counters
	if f.Core == nil {
		f.Core = map[string]float64{}
	}
	f.Events, f.Ticks = e.stats.events, e.stats.ticks
	f.Connects, f.Disconnects, f.Rejected = e.stats.connects, e.stats.disconnects, e.stats.rejected

	f.DeferredStranded, f.MergeViolations, f.AllowedLost = c.strandedDeferred, c.mergeViolations, c.allowedLost
	f.DiskErrors = e.stats.diskErrors
	if p := e.part; p != nil {
		ps := &PartialStats{Replicas: p.r, RemoteReads: p.remoteReads, NoHolder: p.remoteNoHolder, TimedOut: p.remoteTimeouts,
			Drops: p.drops, UnsafeDrops: p.unsafeDrops, Probes: p.probes, StaleProbes: p.staleProbes, SessionsJudged: p.sessionsJudged, UnderReplicated: p.underReplicated,
			CopiesPerRegion: map[string]float64{}}
		for g, k := range p.copies {
			if p.sessionsJudged > 0 {
				ps.CopiesPerRegion[e.sc.Regions[g].Name] = float64(k) / float64(p.sessionsJudged)
			}
		}
		f.Partial = ps
	}
	f.Versioned = VersionedStats{Served: e.cw.served, Stale: e.cw.stale, NotFound: e.cw.notFound, Creates: e.cw.creates}
	for _, name := range []string{CheckConvergence, CheckLostWrites, CheckResurrections, CheckExpiredServed, CheckReadYourWrites, CheckMergeDeterminism, CheckDeferred, CheckVersionReads, CheckRevokedServed, CheckHolders, CheckUnsafeDrops, CheckStaleReads} {
		r.Violations = append(r.Violations, c.examples[name]...)
	}
	f.FaultPeakDigests, f.FaultPeakUnreplicated = r.faultDivergence()
	r.Verdict = e.verdict(f)
	r.Fingerprint = e.finalFingerprint(trace.len())
	return r
}

// explainDivergence records which nodes disagree at the end, and on how
// many buckets.
func (e *engine) explainDivergence() {
	if e.part != nil {
		e.explainPartialDivergence()
		return
	}
	type group struct {
		root  uint64
		nodes []string
		d     *persist.Digests
	}
	var groups []*group
	for _, n := range e.nodes {
		if !n.up {
			continue
		}
		d := n.store.Digests()
		var g *group
		for _, x := range groups {
			if x.root == d.Root {
				g = x
			}
		}
		if g == nil {
			g = &group{root: d.Root, d: d}
			groups = append(groups, g)
		}
		g.nodes = append(g.nodes, n.name)
	}
	if len(groups) < 2 {
		return
	}
	var parts []string
	for _, g := range groups[1:] {
		diff := 0
		for i := range g.d.Buckets {
			if g.d.Buckets[i] != groups[0].d.Buckets[i] {
				diff++
			}
		}
		parts = append(parts, fmt.Sprintf("{%s} differ from {%s} in %d buckets", strings.Join(g.nodes, ","), strings.Join(groups[0].nodes, ","), diff))
	}
	e.chk.violation(CheckConvergence, nil, "", "%d distinct digests at the end: %s", len(groups), strings.Join(parts, "; "))
}

func (w *workload) writes() int64 {
	var n int64
	for k, a := range w.acked {
		if opKind(k) != opRead {
			n += a
		}
	}
	return n
}

// sortedSeconds returns the durations logged, in seconds, in increasing
// order. They are sorted as integers, by radix: a steady hour has some 1.6M
// lags, which pdqsort took ~2% of the run on. Duration.Seconds never
// inverts two durations, so this is the order of the seconds themselves.
func sortedSeconds(l *chunkLog[int64]) []float64 {
	ds := l.all()
	sortInt64s(ds)
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d).Seconds()
	}
	return out
}

// sortInt64s sorts xs in increasing order, by radix for a long slice:
// byte by byte from the lowest, each pass stable, through one buffer as
// long as xs. With the sign bit flipped, the keys order as unsigned
// integers as xs do.
func sortInt64s(xs []int64) {
	if len(xs) < 1<<10 {
		slices.Sort(xs)
		return
	}
	src, dst := xs, make([]int64, len(xs))
	for shift := 0; shift < 64; shift += 8 {
		var at [256]int
		for _, x := range src {
			at[byte((uint64(x)^1<<63)>>shift)]++
		}
		if at[byte((uint64(src[0])^1<<63)>>shift)] == len(src) {
			continue // every key has this byte (lags' high bytes): nothing to move
		}
		pos := 0
		for i, n := range at {
			at[i] = pos
			pos += n
		}
		for _, x := range src {
			b := byte((uint64(x) ^ 1<<63) >> shift)
			dst[at[b]] = x
			at[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &xs[0] {
		copy(xs, src)
	}
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (e *engine) verdict(f *Figures) Verdict {
	ex := e.sc.Expect
	c := e.chk
	v := Verdict{Pass: true}
	count := func(name string, limit *int, got int64) {
		ch := Check{Name: name, Measured: strconv.FormatInt(got, 10), Value: float64(got)}
		if limit != nil {
			ch.Judged = true
			ch.Expected = "<= " + strconv.Itoa(*limit)
			ch.Pass = got <= int64(*limit)
		}
		v.Checks = append(v.Checks, ch)
	}
	conv := Check{Name: CheckConvergence, Value: f.Converge}
	if f.Converge < 0 {
		conv.Measured = "not converged"
	} else {
		conv.Measured = time.Duration(f.Converge * float64(time.Second)).Round(time.Millisecond).String()
	}
	if ex.ConvergeWithin != nil {
		conv.Judged = true
		conv.Expected = "<= " + ex.ConvergeWithin.String()
		conv.Pass = f.Converge >= 0 && f.Converge <= ex.ConvergeWithin.D().Seconds()
	}
	v.Checks = append(v.Checks, conv)
	rec := Check{Name: CheckReconnect, Value: f.Reconnect, Measured: "not reconnected"}
	if f.Reconnect >= 0 {
		rec.Measured = time.Duration(f.Reconnect * float64(time.Second)).Round(time.Millisecond).String()
	}
	if ex.ReconnectWithin != nil {
		rec.Judged = true
		rec.Expected = "<= " + ex.ReconnectWithin.String()
		rec.Pass = f.Reconnect >= 0 && f.Reconnect <= ex.ReconnectWithin.D().Seconds()
	}
	v.Checks = append(v.Checks, rec)
	count(CheckLostWrites, ex.LostWrites, c.lost)
	count(CheckResurrections, ex.Resurrections, int64(len(c.resurrected)))
	count(CheckExpiredServed, ex.ExpiredServed, c.expired)
	count(CheckReadYourWrites, ex.ReadYourWritesViolations, c.ryw)
	count(CheckMergeDeterminism, ex.MergeDeterminism, c.mergeViolations)
	if !c.keepDeltas {
		v.Checks[len(v.Checks)-1].Measured = "not run"
	}
	count(CheckDeferred, ex.DeferredStranded, c.strandedDeferred)
	if p := e.part; p != nil {
		count(CheckHolders, ex.UnderReplicated, p.underReplicated)
		count(CheckUnsafeDrops, ex.UnsafeDrops, p.unsafeDrops)
		count(CheckStaleReads, ex.StaleRemoteReads, p.staleProbes)
	}
	if e.sc.Workload.Consistency != nil {
		count(CheckVersionReads, ex.VersionReadViolations, e.cw.versionViolations)
		count(CheckRevokedServed, ex.RevokedServed, e.cw.revokedServed)
	}
	for _, ch := range v.Checks {
		if ch.Judged && !ch.Pass {
			v.Pass = false
		}
	}
	return v
}

// finalFingerprint closes the fingerprint, which holds the trace up to
// event from, with the rest of the trace and every node's final digests.
func (e *engine) finalFingerprint(from int) string {
	e.trace.encode(e.fp, from, "violation")
	var b [8]byte
	for _, n := range e.nodes {
		d := n.store.Digests()
		binary.LittleEndian.PutUint64(b[:], d.Root)
		e.fp.Write(b[:])
		for _, x := range d.Buckets {
			binary.LittleEndian.PutUint64(b[:], x)
			e.fp.Write(b[:])
		}
	}
	return hex.EncodeToString(e.fp.Sum(nil))
}

// VerdictFile is the content of verdict.json.
type VerdictFile struct {
	Scenario    string      `json:"scenario"`
	Seed        uint64      `json:"seed"`
	Pass        bool        `json:"pass"`
	Fingerprint string      `json:"fingerprint"`
	Checks      []Check     `json:"checks"`
	Figures     Figures     `json:"figures"`
	Violations  []Violation `json:"violations"`
	WallSeconds float64     `json:"wall_seconds"`
	// GOARCH records the architecture of the run: fingerprints are
	// reproducible on the same one (floating point may round differently
	// elsewhere).
	GOARCH string `json:"goarch"`
	// Go is the toolchain version.
	Go string `json:"go"`
	// Code is the commit the run was made with.
	Code Code `json:"code"`
}

// WriteVerdict writes verdict.json.
func (r *Result) WriteVerdict(w io.Writer) error {
	v := VerdictFile{
		Scenario: r.Scenario.Name, Seed: r.Seed, Pass: r.Verdict.Pass, Fingerprint: r.Fingerprint,
		Checks: r.Verdict.Checks, Figures: r.Figures, Violations: r.Violations, WallSeconds: r.Wall.Seconds(),
		GOARCH: runtime.GOARCH, Go: runtime.Version(), Code: currentCode(),
	}
	if v.Violations == nil {
		v.Violations = []Violation{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// WriteScenario writes the resolved scenario as YAML.
func (r *Result) WriteScenario(w io.Writer) error {
	data, err := r.Scenario.yaml()
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// WriteTrace writes trace.jsonl, one event per line.
func (r *Result) WriteTrace(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, ev := range r.Trace {
		if err := enc.Encode(ev); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteMetrics writes metrics.csv: the divergence series, one row per
// sample.
func (r *Result) WriteMetrics(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"t_seconds", "live", "digests", "unreplicated", "writes", "gossip_msgs", "gossip_bytes", "ae_msgs", "ae_bytes"})
	for _, s := range r.Series {
		_ = cw.Write([]string{
			strconv.FormatFloat(s.T.D().Seconds(), 'f', 3, 64),
			strconv.Itoa(s.Live), strconv.Itoa(s.Digests), strconv.FormatInt(s.Unreplicated, 10),
			strconv.FormatInt(s.Writes, 10), strconv.FormatInt(s.GossipMsgs, 10), strconv.FormatInt(s.GossipBytes, 10),
			strconv.FormatInt(s.AEMsgs, 10), strconv.FormatInt(s.AEBytes, 10),
		})
	}
	cw.Flush()
	return cw.Error()
}

// Summary is a few lines for a terminal.
func (r *Result) Summary() string {
	var b []byte
	status := "PASS"
	if !r.Verdict.Pass {
		status = "FAIL"
	}
	f := r.Figures
	b = fmt.Appendf(b, "%s %s seed=%d: %.0fs simulated in %.2fs (%.0fx)\n", status, r.Scenario.Name, r.Seed,
		f.Simulated, r.Wall.Seconds(), f.Simulated/max(r.Wall.Seconds(), 1e-9))
	for _, c := range r.Verdict.Checks {
		mark := "  "
		switch {
		case c.Judged && c.Pass:
			mark = "ok"
		case c.Judged:
			mark = "!!"
		}
		exp := c.Expected
		if exp == "" {
			exp = "(not judged)"
		}
		b = fmt.Appendf(b, "  %s %-28s %-14s %s\n", mark, c.Name, c.Measured, exp)
	}
	b = fmt.Appendf(b, "  writes %d, messages %d, bytes %d (%.0f per write), lag p50 %.3fs p99 %.3fs max %.3fs\n",
		f.Writes, f.Messages, f.Bytes, f.BytesPerWrite, f.LagP50, f.LagP99, f.LagMax)
	b = fmt.Appendf(b, "  sessions %d in %d of %d buckets, unreplicated at the end %d\n", f.Sessions, f.Buckets, persist.Buckets, f.Unreplicated)
	if f.Stranded > 0 {
		b = fmt.Appendf(b, "  stranded (not judged): %d writes only ever held by nodes down at the end\n", f.Stranded)
	}
	if len(r.Faults) > 0 {
		b = fmt.Appendf(b, "  during faults (not judged): up to %d distinct digests, %d unreplicated pairs\n", f.FaultPeakDigests, f.FaultPeakUnreplicated)
	}
	if f.AllowedLost > 0 || f.DiskErrors > 0 {
		b = fmt.Appendf(b, "  durability: %d writes a power loss may lose (allowed), %d store calls failed by disk faults (clients' writes and peers' batches)\n", f.AllowedLost, f.DiskErrors)
	}
	b = fmt.Appendf(b, "  fingerprint %s\n", r.Fingerprint)
	return string(b)
}
