package p2pnode

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/cputime"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Mesh benchmarks on real libp2p hosts over loopback. Each runs a fixed
// workload and reports its figures as metrics; run them once each:
//
//	go test ./p2pnode -run '^$' -bench Mesh -benchtime 1x

// countingMetrics records sync rounds by result, and every counter's total.
type countingMetrics struct {
	mu     sync.Mutex
	rounds map[string]int
	totals map[string]float64
}

func (m *countingMetrics) Add(name string, delta float64, labels ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.totals == nil {
		m.totals = map[string]float64{}
	}
	m.totals[name] += delta
	if name != "sync_rounds" || len(labels) < 2 {
		return
	}
	if m.rounds == nil {
		m.rounds = map[string]int{}
	}
	m.rounds[labels[1]] += int(delta)
}

// total returns the sum of counter name over all its labels.
func (m *countingMetrics) total(name string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.totals[name]
}

func (m *countingMetrics) Observe(string, float64, ...string) {}

func (m *countingMetrics) get(result string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rounds[result]
}

func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkMeshReplicationLag writes at a steady rate on one node and
// measures write-to-visible on the two others.
// In memory (the default) and, with store=disk, on disk with durability
// none and the default anti-entropy period, as the bench harness runs it.
func BenchmarkMeshReplicationLag(b *testing.B) {
	for _, rate := range []int{1000, 5000, 10000, 20000} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			for b.Loop() {
				measureLag(b, false, rate, 2*time.Second)
			}
		})
	}
	for _, rate := range []int{10000, 20000} {
		b.Run(fmt.Sprintf("store=disk/rate=%d", rate), func(b *testing.B) {
			for b.Loop() {
				measureLag(b, true, rate, 2*time.Second)
			}
		})
	}
}

func measureLag(b *testing.B, onDisk bool, rate int, d time.Duration) {
	var tweak func(*Config)
	if onDisk {
		tweak = func(cfg *Config) {
			cfg.Durability = persist.DurabilityNone
			cfg.SyncInterval = node.DefaultConfig().SyncInterval
		}
	}
	c := startP2P(b, 3, onDisk, tweak)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Writes go round lagSessions sessions of 200 keys: a slot (session,
	// key) is written again only after 3,200 writes (160 ms at 20k
	// writes/s), so a late delivery is measured against its own write,
	// not a later one of the same slot.
	const lagSessions = 16
	tokens := make([]string, lagSessions)
	ids := make([]string, lagSessions)
	for i := range tokens {
		tk, err := c.nodes[0].Create(ctx)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tk
		ids[i], _ = node.SessionID(tk)
	}
	eventually(b, 10*time.Second, "convergence", c.converged)
	type slot struct{ id, key string }
	var mu sync.Mutex
	sent := map[slot]time.Time{}
	var lags []time.Duration
	var wg sync.WaitGroup
	for _, n := range c.nodes[1:] {
		feed := n.Watch(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range feed {
				now := time.Now()
				mu.Lock()
				for _, k := range ch.Fields {
					if at, ok := sent[slot{ch.ID, k}]; ok {
						lags = append(lags, now.Sub(at))
					}
				}
				mu.Unlock()
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	// Garbage and collections per write, across the three peers: the
	// collector is what the lag's tail follows (GOGC=400 cut its p99 by
	// half to two thirds on a loaded machine).
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cputime.Process()
	start := time.Now()
	writes := 0
	for i := 0; time.Since(start) < d; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		t, key := i%lagSessions, fmt.Sprintf("k%d", (i/lagSessions)%200)
		mu.Lock()
		sent[slot{ids[t], key}] = time.Now()
		mu.Unlock()
		if err := c.nodes[0].Set(ctx, tokens[t], key, []byte("v")); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	runtime.ReadMemStats(&m1)
	cpu := cputime.Process() - cpu0
	eventually(b, 10*time.Second, "convergence", c.converged)
	cancel()
	wg.Wait()
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(writes), "alloc-B/write")
	b.ReportMetric(float64(m1.NumGC-m0.NumGC)/time.Since(start).Seconds(), "GCs/s")
	b.ReportMetric(float64(m1.HeapAlloc)/(1<<20), "heap-MiB")
	// CPU per write across the process (three peers, gossip included) while
	// writing: what a steady rate costs, and the headroom left.
	b.ReportMetric(float64(cpu.Microseconds())/float64(writes), "cpu-µs/write")
	if len(lags) == 0 {
		b.Fatal("no replicated writes observed")
	}
	b.ReportMetric(float64(writes)/time.Since(start).Seconds(), "writes/s")
	b.ReportMetric(float64(percentile(lags, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lags, 0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkMeshMaxWrites runs 32 writers flat out on one node for 3 s,
// then waits until all three nodes are identical: the rate counts only if
// nothing is left unrepaired.
func BenchmarkMeshMaxWrites(b *testing.B) {
	for b.Loop() {
		c := startP2P(b, 3, false, nil)
		ctx := context.Background()
		var tokens []string
		for range 64 {
			tk, err := c.nodes[0].Create(ctx)
			if err != nil {
				b.Fatal(err)
			}
			tokens = append(tokens, tk)
		}
		var writes atomic.Int64
		// Bytes allocated per write across the process (three peers,
		// gossip included) and collections: garbage is what drives the
		// lag tail, and it is steadier than the rates on a shared machine.
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Since(start) < 3*time.Second; i++ {
					if err := c.nodes[0].Set(ctx, tokens[(w+i)%len(tokens)], fmt.Sprintf("w%d", w), []byte(fmt.Sprint(i))); err != nil {
						b.Error(err)
						return
					}
					writes.Add(1)
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		runtime.ReadMemStats(&m1)
		eventually(b, 60*time.Second, "convergence", c.converged)
		b.ReportMetric(float64(writes.Load())/elapsed.Seconds(), "writes/s")
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(writes.Load()), "alloc-B/write")
		b.ReportMetric(float64(m1.NumGC-m0.NumGC)*1000/float64(writes.Load()), "GCs/1k-writes")
		b.ReportMetric(time.Since(start.Add(elapsed)).Seconds(), "s-to-identical")
	}
}

// BenchmarkMeshConvergeAfterPartition: two nodes each write 10k sessions
// while cut off from each other, then heal; it reports the time from heal to
// identical digests and the anti-entropy bytes exchanged.
func BenchmarkMeshConvergeAfterPartition(b *testing.B) {
	for b.Loop() {
		c := startP2P(b, 2, false, nil)
		ctx := context.Background()
		c.cut([]int{0}, []int{1}, true)
		for _, n := range c.nodes {
			for range 10_000 {
				if _, err := n.Create(ctx, node.WithFields(map[string][]byte{"user": []byte("someone"), "cart": []byte("0123456789")})); err != nil {
					b.Fatal(err)
				}
			}
		}
		before := c.nodes[0].Transport().Stats().DirectBytesOut + c.nodes[1].Transport().Stats().DirectBytesOut
		healed := time.Now()
		c.cut([]int{0}, []int{1}, false)
		eventually(b, 120*time.Second, "convergence", c.converged)
		took := time.Since(healed)
		after := c.nodes[0].Transport().Stats().DirectBytesOut + c.nodes[1].Transport().Stats().DirectBytesOut
		b.ReportMetric(took.Seconds(), "s-to-converge")
		b.ReportMetric(float64(after-before)/(1<<20), "MiB-exchanged")
	}
}

// BenchmarkMeshSyncWhenAgreeing measures the anti-entropy bytes two peers
// that already agree exchange per round.
func BenchmarkMeshSyncWhenAgreeing(b *testing.B) {
	for b.Loop() {
		m := &countingMetrics{}
		c := startP2P(b, 2, false, func(cfg *Config) {
			cfg.SyncInterval = 50 * time.Millisecond
			cfg.Metrics = m
		})
		ctx := context.Background()
		for range 1000 {
			if _, err := c.nodes[0].Create(ctx); err != nil {
				b.Fatal(err)
			}
		}
		eventually(b, 30*time.Second, "convergence", c.converged)
		time.Sleep(200 * time.Millisecond)
		bytes0 := c.nodes[0].Transport().Stats().DirectBytesOut + c.nodes[1].Transport().Stats().DirectBytesOut
		agree0 := m.get("agree")
		time.Sleep(2 * time.Second)
		bytes1 := c.nodes[0].Transport().Stats().DirectBytesOut + c.nodes[1].Transport().Stats().DirectBytesOut
		rounds := m.get("agree") - agree0
		if rounds == 0 {
			b.Fatal("no anti-entropy rounds ran")
		}
		b.ReportMetric(float64(bytes1-bytes0)/float64(rounds), "bytes/round")
		b.ReportMetric(float64(rounds), "rounds")
	}
}

// BenchmarkMeshWrites is the bench harness's write row without Redis:
// writers set one 90-byte field each on node 0 of three peers, on disk as
// in the harness (durability none) and in memory, each writer on its own stretch of 1024 sessions, for
// 3 s, then wait until the peers are identical. Beside the rate it reports
// the process's CPU time and allocation per write (three peers, gossip
// included), which a shared machine disturbs less than the rate.
func BenchmarkMeshWrites(b *testing.B) {
	for _, store := range []string{"disk", "memory"} {
		for _, writers := range []int{1, 50} {
			b.Run(fmt.Sprintf("store=%s/writers=%d", store, writers), func(b *testing.B) {
				for b.Loop() {
					meshWrites(b, store == "disk", writers, 3*time.Second)
				}
			})
		}
	}
}

func meshWrites(b *testing.B, onDisk bool, writers int, d time.Duration) {
	c := startP2P(b, 3, onDisk, func(cfg *Config) {
		cfg.Durability = persist.DurabilityNone
		cfg.SyncInterval = node.DefaultConfig().SyncInterval // as the harness runs it
	})
	ctx := context.Background()
	const pool = 1024
	tokens := make([]string, pool)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < pool; i += 8 {
				tk, err := c.nodes[0].Create(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				tokens[i] = tk
			}
		})
	}
	wg.Wait()
	eventually(b, 60*time.Second, "convergence", c.converged)
	value := bytes.Repeat([]byte("v"), 90)
	var writes atomic.Int64
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := cputime.Process()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("w%d", w)
			for i := 0; time.Since(start) < d; i++ {
				if err := c.nodes[0].Set(ctx, tokens[(w*(pool/writers)+i)%pool], key, value); err != nil {
					b.Error(err)
					return
				}
				writes.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	eventually(b, 60*time.Second, "convergence", c.converged)
	cpu := cputime.Process() - cpu0
	runtime.ReadMemStats(&m1)
	n := float64(writes.Load())
	b.ReportMetric(n/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/write")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "alloc-B/write")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/write")
	b.ReportMetric(time.Since(start.Add(elapsed)).Seconds(), "s-to-identical")
}
