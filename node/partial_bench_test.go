package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// BenchmarkPartialReplication compares full replication with R = 1 on 9
// in-process peers in 3 regions (memnet, in-memory stores): one op is one
// create on some peer, timed until it is stored where it should be (on
// every peer, or on its one holder per region once handed off). Reported:
// mesh writes/s including replication, session copies stored per peer per
// session written, and read latency p50/p99 on a holder and (R = 1) on a
// peer that fetches from a holder. All peers share this machine's cores,
// so writes/s compares the work each setting makes the mesh do.
//
//	go test ./node -run '^$' -bench BenchmarkPartialReplication -benchtime 3000x
func BenchmarkPartialReplication(b *testing.B) {
	for _, disk := range []bool{false, true} {
		for _, r := range []int{0, 1} {
			name := "memory/replicas=all"
			if disk {
				name = "badger/replicas=all"
			}
			if r > 0 {
				name = strings.Replace(name, "all", fmt.Sprint(r), 1)
			}
			b.Run(name, func(b *testing.B) { benchPartial(b, r, disk, 3) })
		}
	}
}

// benchPartial runs one setting over perRegion peers in each of 3 regions;
// disk puts the stores in Badger under a temporary directory (durability
// group) and reports disk bytes per peer.
func benchPartial(b *testing.B, r int, disk bool, perRegion int) {
	c := &partCluster{net: newMemNet(), r: r}
	m := &countingMetrics{}
	var nodes []*Node
	for _, rg := range []string{"eu", "us", "ap"} {
		for i := range perRegion {
			cfg := partConfig(rg, r)
			cfg.Logger = testConfig().Logger
			cfg.Metrics = m
			if disk {
				cfg.DataDir = b.TempDir()
				cfg.Durability = persist.DurabilityGroup
			}
			cfg.Dial = c.net.dialer(PeerID(fmt.Sprintf("%s-%d", rg, i)))
			n, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			nodes = append(nodes, n)
		}
	}
	defer func() {
		for _, n := range nodes {
			_ = n.Close(context.Background())
		}
	}()
	c.net.connectAll()
	if r > 0 {
		waitFor(b, 10*time.Second, "placement", func() bool {
			for _, n := range nodes {
				if len(n.Placement().RegionMembers) != perRegion {
					return false
				}
			}
			return true
		})
	}
	ctx := context.Background()
	value := make([]byte, 200)
	copies := len(nodes)
	if r > 0 {
		copies = 3 * min(r, perRegion)
	}
	stored := func() int {
		total := 0
		for _, n := range nodes {
			total += n.Store().(*persist.Store).Len()
		}
		return total
	}
	tokens := make([]string, b.N)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += len(nodes) {
				tok, err := n.Create(ctx, WithFields(map[string][]byte{"data": value}))
				if err != nil {
					b.Error(err)
					return
				}
				tokens[i] = tok
			}
		}()
	}
	wg.Wait()
	written := time.Since(start)
	b.Logf("%d writes acknowledged in %v", b.N, written)
	waitFor(b, 2*time.Minute, "replication", func() bool { return stored() == copies*b.N })
	b.Logf("stored where they belong %v later", time.Since(start)-written)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	// Deltas peers received and decoded (gossip, direct sends, handoff;
	// before partial replication keeps what it holds): the mesh's
	// replication work per write beyond the writer's own.
	b.ReportMetric(m.get("deltas_received")/float64(b.N), "received-deltas/write")
	b.ReportMetric(float64(stored())/float64(len(nodes))/float64(b.N), "copies/peer/session")
	if disk {
		var total int64
		for _, n := range nodes {
			du, err := n.Store().(*persist.Store).DiskUsage()
			if err != nil {
				b.Fatal(err)
			}
			total += du
		}
		b.ReportMetric(float64(total)/float64(len(nodes)), "disk-bytes/peer")
	}
	// Reads of each session on a holder and, with R > 0, on a peer that
	// is not one.
	var local, remote []time.Duration
	timed := func(n *Node, tok string, into *[]time.Duration) {
		t0 := time.Now()
		if _, err := n.Get(ctx, tok); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(t0))
	}
	for i, tok := range tokens[:min(len(tokens), 2000)] {
		id, _ := SessionID(tok)
		var holder, other *Node
		for j := range nodes {
			n := nodes[(i+j)%len(nodes)]
			if n.core.HoldsID(id) {
				holder = cmp.Or(holder, n)
			} else {
				other = cmp.Or(other, n)
			}
		}
		timed(holder, tok, &local)
		if other != nil {
			timed(other, tok, &remote)
		}
	}
	report := func(ds []time.Duration, what string) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds()), what+"-p50-ns")
		b.ReportMetric(float64(ds[len(ds)*99/100].Nanoseconds()), what+"-p99-ns")
	}
	report(local, "holder-read")
	report(remote, "remote-read")
}

// waitFor polls cond until it holds or within passes.
func waitFor(b *testing.B, within time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
