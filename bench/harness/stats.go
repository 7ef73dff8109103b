package main

import (
	"context"
	"errors"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// hist is a log-linear latency histogram in nanoseconds: exact below 128 ns,
// then 128 buckets per power of two (under 1% error). Workers keep their own
// and merge them, so recording costs no synchronisation.
type hist struct {
	counts [64 << subBits]uint64
	n      uint64
}

const subBits = 7

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	msb := bits.Len64(v) - 1
	shift := msb - subBits
	return (shift+1)<<subBits + int(v>>uint(shift)) - 1<<subBits
}

// lowerBound and width give the range of values bucket i holds.
func bucketRange(i int) (lo, width uint64) {
	if i < 1<<subBits {
		return uint64(i), 1
	}
	shift := i>>subBits - 1
	mant := uint64(i&(1<<subBits-1)) + 1<<subBits
	return mant << uint(shift), 1 << uint(shift)
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0..1), the middle of its bucket.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			lo, w := bucketRange(i)
			return time.Duration(lo + w/2)
		}
	}
	return 0
}

// loadResult is one round of a closed-loop load: every worker issues its
// next operation as soon as the previous one returns.
type loadResult struct {
	Ops     int64
	Elapsed time.Duration
	H       *hist
}

func (r loadResult) opsPerSec() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

func (r loadResult) quantileMicros(q float64) float64 {
	return float64(r.H.quantile(q)) / float64(time.Microsecond)
}

// runLoad runs conc workers calling op for d and records each call's
// latency. The first error stops every worker and is returned.
func runLoad(ctx context.Context, conc int, d time.Duration, op func(w, i int) error) (loadResult, error) {
	var (
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    = &hist{}
		ops      atomic.Int64
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &hist{}
			t := time.Now()
			i := 0
			for ; !stop.Load(); i++ {
				if err := op(w, i); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					break
				}
				t2 := time.Now()
				h.add(t2.Sub(t))
				t = t2
				if t2.After(deadline) {
					break
				}
				if i&255 == 0 && ctx.Err() != nil {
					errOnce.Do(func() { firstErr = ctx.Err() })
					stop.Store(true)
					break
				}
			}
			ops.Add(int64(h.n))
			mu.Lock()
			total.merge(h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := loadResult{Ops: ops.Load(), Elapsed: time.Since(start), H: total}
	if firstErr != nil {
		return r, firstErr
	}
	if r.Ops == 0 {
		return r, errors.New("bench: no operation completed")
	}
	return r, nil
}

// interleave runs rounds of every contender, rotating their order each
// round, so slow drifts of a noisy machine fall on all of them alike.
// Result [c][r] is contender c's round r.
func interleave(rounds int, contenders ...func() (loadResult, error)) ([][]loadResult, error) {
	out := make([][]loadResult, len(contenders))
	for r := range rounds {
		for k := range contenders {
			c := (r + k) % len(contenders)
			res, err := contenders[c]()
			if err != nil {
				return nil, err
			}
			out[c] = append(out[c], res)
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// figure extracts one number from a round.
type figure func(loadResult) float64

var (
	fOps figure = loadResult.opsPerSec
	fP50 figure = func(r loadResult) float64 { return r.quantileMicros(0.50) }
	fP99 figure = func(r loadResult) float64 { return r.quantileMicros(0.99) }
)

func medianOf(rs []loadResult, f figure) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

// ratioOf is the median over rounds of a[r]/b[r]: each ratio compares two
// figures measured moments apart.
func ratioOf(a, b []loadResult, f figure) float64 {
	var xs []float64
	for i := range min(len(a), len(b)) {
		if d := f(b[i]); d > 0 {
			xs = append(xs, f(a[i])/d)
		}
	}
	return median(xs)
}

func roundsOf(rs []loadResult, f figure) []float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return xs
}
