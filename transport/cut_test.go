package transport

import (
	"context"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/sessionmesh/sessionmesh/internal/netcut"
)

// Cut tests give each host its own loopback address in 127.0.10.0/24 (the
// daemon's tests use 127.0.20.0/24) and TCP only, so that a kernel cut is
// a pair of addresses.

// onAddr sets cfg to listen on ip only.
func onAddr(cfg Config, ip string) Config {
	cfg.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"}
	return cfg
}

// member returns tr's view of id.
func memberOf(tr *Transport, id peer.ID) (Member, bool) {
	for _, m := range tr.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}

func connectedTo(tr *Transport, id peer.ID) bool {
	m, ok := memberOf(tr, id)
	return ok && m.Connected
}

// checkConnsBetween fails unless every connection of tr to id runs between
// the two given addresses, as the kernel cut assumes.
func checkConnsBetween(t *testing.T, tr *Transport, id peer.ID, local, remote string) {
	t.Helper()
	conns := tr.h.Network().ConnsToPeer(id)
	if len(conns) == 0 {
		t.Fatalf("no connection to %s", id)
	}
	for _, c := range conns {
		l, _ := manet.ToIP(c.LocalMultiaddr())
		r, _ := manet.ToIP(c.RemoteMultiaddr())
		if l.String() != local || r.String() != remote {
			t.Fatalf("connection %s -> %s, want %s -> %s", c.LocalMultiaddr(), c.RemoteMultiaddr(), local, remote)
		}
	}
}

// A kernel cut (silent: packets dropped, sockets open) is noticed on both
// sides within FailureTimeout (PeerDown, Members Connected=false), absent
// members are probed at about one dial a second, and the link is back
// within about a second of the heal.
func TestKernelCutDetectedAndHealed(t *testing.T) {
	t.Parallel()
	cut := netcut.New(t)
	const ipA, ipB = "127.0.10.2", "127.0.10.3"
	ra, rb := &recorder{}, &recorder{}
	a := startTransport(t, onAddr(testConfig(), ipA), ra)
	cfg := onAddr(testConfig(), ipB)
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, cfg, rb)
	waitFor(t, 10*time.Second, "a and b connected", func() bool {
		return connectedTo(a, b.ID()) && connectedTo(b, a.ID()) && ra.isUp(b.ID()) && rb.isUp(a.ID())
	})
	checkConnsBetween(t, a, b.ID(), ipA, ipB)
	checkConnsBetween(t, b, a.ID(), ipB, ipA)

	cut.Cut(ipA, ipB)
	start := time.Now()
	waitFor(t, DefaultFailureTimeout+3*time.Second, "both sides noticing the cut", func() bool {
		return !connectedTo(a, b.ID()) && !connectedTo(b, a.ID()) && !ra.isUp(b.ID()) && !rb.isUp(a.ID())
	})
	noticed := time.Since(start)
	if a.Stats().FailuresDetected+b.Stats().FailuresDetected == 0 {
		t.Error("no failure detected by ping")
	}

	// Probe rate while cut off.
	dials0, at0 := b.Stats().DialAttempts, time.Now()
	time.Sleep(4 * time.Second)
	rate := float64(b.Stats().DialAttempts-dials0) / time.Since(at0).Seconds()
	if rate > 2 {
		t.Errorf("b dials absent a %.2f times a second, want about 1 at most", rate)
	}
	if m, _ := memberOf(a, b.ID()); m.Connected || m.LastSeen.IsZero() || time.Since(m.Since) > time.Since(start) {
		t.Errorf("a's view of b during the cut: %+v", m)
	}

	cut.Heal()
	healed := time.Now()
	waitFor(t, 5*time.Second, "reconnection after the heal", func() bool {
		return connectedTo(a, b.ID()) && connectedTo(b, a.ID()) && ra.isUp(b.ID()) && rb.isUp(a.ID())
	})
	back := time.Since(healed)
	t.Logf("cut noticed after %v; probe rate %.2f dials/s; reconnected %v after the heal", noticed, rate, back)
	if back > 3*time.Second {
		t.Errorf("reconnected %v after the heal, want about 1 s", back)
	}
	checkConnsBetween(t, a, b.ID(), ipA, ipB)
}

// The star of the issue: b and c bootstrap only to a; once they have
// learned each other through a, cutting a from both leaves b and c
// connected, and gossip from b reaches c.
func TestKernelCutStar(t *testing.T) {
	t.Parallel()
	cut := netcut.New(t)
	const ipA, ipB, ipC = "127.0.10.4", "127.0.10.5", "127.0.10.6"
	ra, rb, rc := &recorder{}, &recorder{}, &recorder{}
	a := startTransport(t, onAddr(testConfig(), ipA), ra)
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, onAddr(cfg, ipB), rb)
	c := startTransport(t, onAddr(cfg, ipC), rc)
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})
	checkConnsBetween(t, b, c.ID(), ipB, ipC)

	cut.Cut(ipA, ipB)
	cut.Cut(ipA, ipC)
	waitFor(t, DefaultFailureTimeout+3*time.Second, "a lost on both sides", func() bool {
		return !rb.isUp(a.ID()) && !rc.isUp(a.ID()) && !ra.isUp(b.ID()) && !ra.isUp(c.ID())
	})
	if !rb.isUp(c.ID()) || !rc.isUp(b.ID()) {
		t.Fatal("b and c lost each other in a cut that did not separate them")
	}
	if err := b.Broadcast(context.Background(), []byte("b to c, a cut off")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "gossip from b to c", func() bool {
		return rc.gossipCount(b.ID(), "b to c, a cut off") == 1
	})
	if n := ra.gossipCount(b.ID(), "b to c, a cut off"); n != 0 {
		t.Error("a received gossip through the cut")
	}
	cut.Heal()
	waitFor(t, 5*time.Second, "a back", func() bool { return ra.isUp(b.ID()) && ra.isUp(c.ID()) })
}

// BenchmarkKernelCutHeal measures, over b.N kernel cuts, how long the two
// sides take to notice the cut and to reconnect after the heal, and the
// probe rate in between; it reports p50 and p99 of each.
//
//	go test ./transport -run '^$' -bench KernelCutHeal -benchtime 20x
func BenchmarkKernelCutHeal(b *testing.B) {
	cut := netcut.New(b)
	const ipA, ipB = "127.0.10.9", "127.0.10.10"
	ra, rb := &recorder{}, &recorder{}
	x := startTransport(b, onAddr(testConfig(), ipA), ra)
	cfg := onAddr(testConfig(), ipB)
	cfg.Bootstrap = addrsOf(x)
	y := startTransport(b, cfg, rb)
	up := func() bool { return ra.isUp(y.ID()) && rb.isUp(x.ID()) }
	down := func() bool { return !ra.isUp(y.ID()) && !rb.isUp(x.ID()) }
	waitFor(b, 10*time.Second, "connected", up)

	var notice, heal []time.Duration
	var dials uint64
	var cutFor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cut.Cut(ipA, ipB)
		start := time.Now()
		waitFor(b, 15*time.Second, "cut noticed", down)
		notice = append(notice, time.Since(start))
		d0, t0 := x.Stats().DialAttempts+y.Stats().DialAttempts, time.Now()
		// Hold the cut a little longer, a different time each round, so
		// that the heal falls anywhere in the redial cycle.
		time.Sleep(time.Second + time.Duration(i%7)*300*time.Millisecond)
		cut.Heal()
		healed := time.Now()
		dials += x.Stats().DialAttempts + y.Stats().DialAttempts - d0
		cutFor += healed.Sub(t0)
		waitFor(b, 15*time.Second, "reconnected", up)
		heal = append(heal, time.Since(healed))
		b.Logf("round %d: noticed after %v, reconnected %v after the heal", i, notice[i], heal[i])
	}
	b.StopTimer()
	pct := func(ds []time.Duration, p float64) float64 {
		s := slices.Clone(ds)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(p*float64(len(s))))].Seconds() * 1000
	}
	b.ReportMetric(pct(notice, 0.5), "notice-p50-ms")
	b.ReportMetric(pct(notice, 0.99), "notice-p99-ms")
	b.ReportMetric(pct(heal, 0.5), "heal-p50-ms")
	b.ReportMetric(pct(heal, 0.99), "heal-p99-ms")
	b.ReportMetric(float64(dials)/2/cutFor.Seconds(), "dials/s/side")
	b.ReportMetric(0, "ns/op")
}
