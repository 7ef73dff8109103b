package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// TestLargeRepairBoundedMemory repairs a store of N sessions into an empty
// peer, both on disk, through direct queues of 2 messages, and reports the
// heap and RSS the repair added. N comes from SESSIONMESH_REPAIR_SESSIONS;
// without it the test repairs 20,000 sessions, 2,000 with -short (seconds:
// the stream, the full queues and the identical stores are checked on
// every run, the memory bounds hold trivially), as a million take minutes:
//
//	SESSIONMESH_REPAIR_SESSIONS=1000000 go test ./node -run LargeRepair -v -timeout 30m
//
// The round streams bucket by bucket with syncWindow chunks in flight, so
// what it adds to the heap does not grow with N. Asserted: at most 128 MiB
// retained after a GC (the stores' own memory: read cache, block cache,
// memtables, table indexes) and 512 MiB at the peak (that plus the
// garbage between collections, which the GC paces against the whole live
// heap, the source store included); a round holding the difference would
// need N × ~250 bytes more, 240 MiB at a million sessions, on top.
func TestLargeRepairBoundedMemory(t *testing.T) {
	v := os.Getenv("SESSIONMESH_REPAIR_SESSIONS")
	if v == "" {
		v = "20000"
		if testing.Short() { // the race pass
			v = "2000"
		}
	}
	total, err := strconv.Atoi(v)
	if err != nil || total <= 0 {
		t.Fatalf("SESSIONMESH_REPAIR_SESSIONS=%q: want a positive count", v)
	}
	defer func(n int) { directQueueLen = n }(directQueueLen)
	directQueueLen = 2
	m := &queueMetrics{}
	net := newMemNet()
	// A link slower than the round reads its chunks: the queue fills.
	net.sendDelay = time.Millisecond
	var nodes []*Node
	for i := range 2 {
		cfg := testConfig()
		cfg.DataDir = t.TempDir()
		cfg.Durability = persist.DurabilityNone
		cfg.SyncInterval = time.Hour
		cfg.SyncTimeout = time.Minute
		cfg.SyncChunkBytes = 16 << 10 // many messages: the queues fill
		cfg.Metrics = m
		cfg.Dial = net.dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		n, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		nodes = append(nodes, n)
	}
	net.connectAll()
	c := &cluster{net: net, nodes: nodes}
	waitFirstRounds(t, c)
	a, b := nodes[0], nodes[1]
	start := time.Now()
	fill(t, a, 0, total, 2)
	t.Logf("filled %d sessions in %v", total, time.Since(start).Round(time.Millisecond))

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, rss0 := ms.HeapInuse, rss()
	var peakHeap, peakRSS uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			peakRSS = max(peakRSS, rss())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start = time.Now()
	rep, err := a.Sync(context.Background(), b.ID())
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	heapGrowth := int64(peakHeap) - int64(heap0)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	retained := int64(ms.HeapInuse) - int64(heap0)
	t.Logf("repair of %d sessions: %v, %s; %.1f MiB out, %.1f MiB in", total, took.Round(time.Millisecond), rep.Result,
		float64(rep.BytesOut)/(1<<20), float64(rep.BytesIn)/(1<<20))
	t.Logf("heap in use %.1f MiB before, peak growth %.1f MiB, %.1f MiB retained after a GC; RSS %.1f MiB before, peak %.1f MiB; %d waits on a full queue",
		float64(heap0)/(1<<20), float64(heapGrowth)/(1<<20), float64(retained)/(1<<20), float64(rss0)/(1<<20), float64(peakRSS)/(1<<20), m.full.Load())
	if rep.Result != SyncRepaired || rep.SessionsOut != total {
		t.Fatalf("repair: %+v", rep)
	}
	if a.store.Digests().Root != b.store.Digests().Root || b.store.(*persist.Store).Len() != total {
		t.Fatal("the stores differ after the repair")
	}
	if m.full.Load() == 0 && !testing.Short() {
		// The race pass's 2,000 sessions make about thirty chunks, which
		// the round's window keeps from filling the queue; the plain
		// run's 20,000 fill it (16-34 waits).
		t.Error("the outbound queue never filled")
	}
	// Retained: what the stores keep (caches, memtables, indexes), bounded
	// by their options. Peak: that plus the garbage between collections,
	// which the GC paces against the whole live heap.
	if retained > 128<<20 {
		t.Errorf("the repair left the heap %.1f MiB larger after a GC, bound 128 MiB", float64(retained)/(1<<20))
	}
	if heapGrowth > 512<<20 {
		t.Errorf("the repair grew the heap by %.1f MiB at its peak, bound 512 MiB", float64(heapGrowth)/(1<<20))
	}
}

// rss returns the resident set size of the process (Linux), 0 elsewhere.
func rss() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
