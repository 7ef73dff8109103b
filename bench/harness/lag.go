package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// lagSlots: writes go to field k<j> of session t, slot = j*lagSessions+t,
// in turn, so a slot is rewritten only every lagSessions*lagKeys writes
// (1.3 s at 10k writes/s, 0.64 s at 20k), far longer than any lag we
// expect to see.
const (
	lagSessions = 64
	lagKeys     = 200
)

// lagTargets are issue 12's replication lag targets: p99 in ms by rate.
var lagTargets = map[int]float64{10000: 5, 20000: 10}

type lagRun struct {
	Rate      int     `json:"rate"`
	Achieved  float64 `json:"achieved_writes_per_s"`
	Writes    int     `json:"writes"`
	Seen      int     `json:"deliveries_seen"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	Converged float64 `json:"s_to_identical_after_stop"`
	// The process's garbage per write and collections per second over the
	// run (the three peers are in this process): the collector is where
	// the lag's tail comes from.
	AllocPerWrite float64 `json:"alloc_bytes_per_write"`
	GCsPerSec     float64 `json:"gcs_per_s"`
}

// measureLag writes at a steady rate on node 0 for d and measures, through
// node.Watch on the two others, the time from just before Set to the
// change arriving.
func measureLag(ctx context.Context, m *mesh, tokens []string, rate int, d, within time.Duration) (lagRun, error) {
	ids := map[string]int{}
	for i, tk := range tokens {
		id, _ := node.SessionID(tk)
		ids[id] = i
	}
	keys := map[string]int{}
	for j := range lagKeys {
		keys[fmt.Sprintf("k%d", j)] = j
	}
	sent := make([]atomic.Int64, lagSessions*lagKeys) // unix ns of the last write to the slot
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	h := &hist{}
	var wg sync.WaitGroup
	for _, n := range m.nodes[1:] {
		feed := n.Watch(wctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := &hist{}
			for ch := range feed {
				now := time.Now().UnixNano()
				t, ok := ids[ch.ID]
				if !ok || !ch.Remote {
					continue
				}
				for _, k := range ch.Fields {
					if j, ok := keys[k]; ok {
						if at := sent[j*lagSessions+t].Load(); at > 0 {
							local.add(time.Duration(now - at))
						}
					}
				}
			}
			mu.Lock()
			h.merge(local)
			mu.Unlock()
		}()
	}
	// Four writers share the rate, each on its own schedule, so one slow
	// Set does not hold the others up.
	const writers = 4
	var writes atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	var ww sync.WaitGroup
	for w := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			interval := time.Second * writers / time.Duration(rate)
			off := time.Duration(w) * interval / writers
			for i := 0; ; i++ {
				at := start.Add(off + time.Duration(i)*interval)
				if at.Sub(start) >= d {
					return
				}
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				seq := i*writers + w
				t, j := seq%lagSessions, (seq/lagSessions)%lagKeys
				sent[j*lagSessions+t].Store(time.Now().UnixNano())
				if err := m.nodes[0].Set(ctx, tokens[t], fmt.Sprintf("k%d", j), []byte("v")); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				writes.Add(1)
			}
		}()
	}
	ww.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&m1)
	if firstErr != nil {
		return lagRun{}, fmt.Errorf("lag: set: %w", firstErr)
	}
	conv, err := m.waitConverged(ctx, within)
	if err != nil {
		return lagRun{}, err
	}
	time.Sleep(50 * time.Millisecond) // the last changes reach the feeds
	cancel()
	wg.Wait()
	r := lagRun{
		Rate: rate, Achieved: float64(writes.Load()) / elapsed.Seconds(), Writes: int(writes.Load()), Seen: int(h.n),
		P50ms: float64(h.quantile(0.5)) / 1e6, P99ms: float64(h.quantile(0.99)) / 1e6, MaxMs: float64(h.quantile(1)) / 1e6,
		Converged:     conv.Seconds(),
		AllocPerWrite: float64(m1.TotalAlloc-m0.TotalAlloc) / float64(max(1, writes.Load())),
		GCsPerSec:     float64(m1.NumGC-m0.NumGC) / elapsed.Seconds(),
	}
	if h.n == 0 {
		return r, fmt.Errorf("%w: lag: no replicated write observed", errLost)
	}
	return r, nil
}

type maxRun struct {
	WritesPerSec float64 `json:"writes_per_s"`
	Writes       int64   `json:"writes"`
	Converged    float64 `json:"s_to_identical_after_stop"`
}

// measureMax runs writers flat out on node 0 for d, each on its own
// stretch of the writePool sessions in tokens, then waits until all peers
// are identical: the rate counts only if nothing is left unrepaired.
func measureMax(ctx context.Context, m *mesh, tokens []string, writers int, d, within time.Duration) (maxRun, error) {
	var seq atomic.Int64
	r, err := runLoad(ctx, writers, d, func(w, i int) error {
		v := seq.Add(1)
		return m.nodes[0].Set(ctx, tokens[slot(w, i, writers)], fmt.Sprintf("w%d", w), valueFor(w, int(v)))
	})
	if err != nil {
		return maxRun{}, err
	}
	conv, err := m.waitConverged(ctx, within)
	if err != nil {
		return maxRun{}, err
	}
	return maxRun{WritesPerSec: r.opsPerSec(), Writes: r.Ops, Converged: conv.Seconds()}, nil
}

// benchLag: replication lag at steady rates and the maximum sustained
// write rate, on a 3-node mesh with durability none.
func benchLag(ctx context.Context, e *env) error {
	m, err := startMesh(ctx, "lag", filepath.Join(e.work, "lag"), 3, persist.DurabilityNone)
	if err != nil {
		return err
	}
	defer m.close()
	tokens, err := createSessions(ctx, m.nodes[0].Node, 0, lagSessions, 4)
	if err != nil {
		return err
	}
	if _, err := m.waitConverged(ctx, e.set.ConvergeWithin); err != nil {
		return err
	}
	sec := "Replication lag (write on one peer → visible on the 2 others, node.Watch)"
	const setup = "3 peers, durability none, loopback"
	runs := map[string][]lagRun{}
	for _, rate := range e.set.LagRates {
		var ps50, ps99, ach []float64
		for range e.set.LagRounds {
			r, err := measureLag(ctx, m, tokens, rate, e.set.LagDur, e.set.ConvergeWithin)
			if err != nil {
				return err
			}
			runs[fmt.Sprint(rate)] = append(runs[fmt.Sprint(rate)], r)
			ps50, ps99, ach = append(ps50, r.P50ms), append(ps99, r.P99ms), append(ach, r.Achieved)
		}
		e.rep.add(row{Section: sec, Measure: fmt.Sprintf("lag p50 at %d writes/s", rate), Unit: "ms", SM: num(median(ps50)), SMSetup: setup, SMRounds: ps50})
		p99 := row{Section: sec, Measure: fmt.Sprintf("lag p99 at %d writes/s", rate), Unit: "ms", SM: num(median(ps99)), SMSetup: setup, SMRounds: ps99}
		if bound, ok := lagTargets[rate]; ok {
			p99.Target = fmt.Sprintf("< %g ms at %dk writes/s", bound, rate/1000)
			if median(ps99) < bound {
				p99.Standing = fmt.Sprintf("met, %.2f ms", median(ps99))
			} else {
				p99.Standing = fmt.Sprintf("missed, %.2f ms", median(ps99))
			}
		}
		e.rep.add(p99)
		e.rep.add(row{Section: sec, Measure: fmt.Sprintf("rate achieved, asked %d writes/s", rate), Unit: "writes/s", SM: num(median(ach)), SMSetup: setup, SMRounds: ach})
	}
	e.rep.detail("lag_runs", runs)

	pool, err := createSessions(ctx, m.nodes[0].Node, lagSessions, writePool, 8)
	if err != nil {
		return err
	}
	var rates, convs []float64
	var maxRuns []maxRun
	for range e.set.MaxRounds {
		r, err := measureMax(ctx, m, pool, 32, e.set.MaxDur, e.set.ConvergeWithin)
		if err != nil {
			return err
		}
		maxRuns = append(maxRuns, r)
		rates, convs = append(rates, r.WritesPerSec), append(convs, r.Converged)
	}
	e.rep.detail("max_rate_runs", maxRuns)
	e.rep.add(row{Section: sec, Measure: "max sustained writes/s (32 writers, all peers identical after)", Unit: "writes/s", SM: num(median(rates)), SMSetup: setup, SMRounds: rates})
	e.rep.add(row{Section: sec, Measure: "writers stop → identical digests", Unit: "s", SM: num(median(convs)), SMSetup: setup, SMRounds: convs})
	return nil
}
