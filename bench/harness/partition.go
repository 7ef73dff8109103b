package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/netcut"
	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Loopback addresses of the bench's kernel-cut meshes (the transport's
// tests use 127.0.10.x, the daemon's 127.0.20.x).
var (
	partitionIPs = []string{"127.0.11.2", "127.0.11.3", "127.0.11.4"}
	reconnectIPs = []string{"127.0.11.5", "127.0.11.6"}
)

type partitionRun struct {
	// Cut is "kernel" (iptables drops the packets between the peers'
	// loopback addresses: connections stay open and silent, dials hang, as
	// in a real partition) or "block" (Transport().Block on both sides:
	// connections are closed politely and Unblock redials at once).
	Cut              string  `json:"cut"`
	PartitionSeconds float64 `json:"partition_s"`
	PerSide          int     `json:"sessions_per_side"`
	WriteSeconds     float64 `json:"s_to_write_both_sides"`
	// NoticedSeconds: from the cut until both sides have closed their
	// connections to the other (kernel cuts only).
	NoticedSeconds   float64 `json:"s_cut_to_noticed,omitempty"`
	ConnectedSeconds float64 `json:"s_heal_to_connected"`
	HealSeconds      float64 `json:"s_heal_to_identical"`
	DirectBytes      uint64  `json:"direct_bytes_out_all_peers"`
	GossipBytes      uint64  `json:"gossip_bytes_out_all_peers"`
}

// linked reports whether node a has an open connection to node b.
func linked(a, b *p2pnode.Node) bool {
	return slices.Contains(a.Transport().Peers(), b.Transport().ID())
}

// sidesLinked reports whether any (all, when all is set) link between
// peer 0 and peers 1, 2 is up, seen from either end.
func (m *mesh) sidesLinked(all bool) bool {
	for _, i := range []int{1, 2} {
		for _, up := range []bool{linked(m.nodes[0], m.nodes[i]), linked(m.nodes[i], m.nodes[0])} {
			if up && !all {
				return true
			}
			if !up && all {
				return false
			}
		}
	}
	return all
}

// measurePartition cuts peer 0 from peers 1 and 2 for d (with the kernel
// cutter kc, or with Block when kc is nil), writes perSide standard
// sessions on peer 0 and as many on peer 1 meanwhile, heals, and measures
// the time to reconnect, the time to identical digests and the bytes the
// anti-entropy streams carried (transport direct bytes out, all peers).
func measurePartition(ctx context.Context, e *env, d time.Duration, perSide int, kc *netcut.Cutter) (partitionRun, error) {
	kind := "block"
	if kc != nil {
		kind = "kernel"
	}
	name := fmt.Sprintf("partition-%s-%.0fs", kind, d.Seconds())
	var m *mesh
	var err error
	if kc != nil {
		m, err = startMeshOn(ctx, name, filepath.Join(e.work, name), partitionIPs, persist.DurabilityNone)
	} else {
		m, err = startMesh(ctx, name, filepath.Join(e.work, name), 3, persist.DurabilityNone)
	}
	if err != nil {
		return partitionRun{}, err
	}
	defer m.close()
	run := partitionRun{Cut: kind, PartitionSeconds: d.Seconds(), PerSide: perSide}
	cut := func() error {
		if kc == nil {
			m.cut([]int{0}, []int{1, 2}, true)
			return nil
		}
		return errors.Join(kc.Cut(partitionIPs[0], partitionIPs[1]), kc.Cut(partitionIPs[0], partitionIPs[2]))
	}
	heal := func() error {
		if kc == nil {
			m.cut([]int{0}, []int{1, 2}, false)
			return nil
		}
		return kc.Heal()
	}
	if err := cut(); err != nil {
		return run, fmt.Errorf("partition: cut: %w", err)
	}
	cutAt := time.Now()
	noticed := make(chan time.Duration, 1)
	go func() {
		if waitFor(ctx, d+30*time.Second, func() bool { return !m.sidesLinked(false) }) == nil {
			noticed <- time.Since(cutAt)
		}
		close(noticed)
	}()
	var tokens [2][]string
	var errs [2]error
	var wg sync.WaitGroup
	for side := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens[side], errs[side] = createSessions(ctx, m.nodes[side].Node, side*perSide, perSide, 4)
		}()
	}
	wg.Wait()
	run.WriteSeconds = time.Since(cutAt).Seconds()
	if err := errors.Join(errs[:]...); err != nil {
		_ = heal()
		return run, fmt.Errorf("partition: write: %w", err)
	}
	// Peers 1 and 2 stay connected: they agree before the heal.
	if err := waitFor(ctx, e.set.ConvergeWithin, func() bool {
		return m.nodes[1].Store().Digests().Root == m.nodes[2].Store().Digests().Root
	}); err != nil {
		_ = heal()
		return run, fmt.Errorf("%w: partition: peers 1 and 2 on the same side: %w", errNotConverged, err)
	}
	if rest := time.Until(cutAt.Add(d)); rest > 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
			_ = heal()
			return run, ctx.Err()
		}
	}
	if n, ok := <-noticed; ok {
		run.NoticedSeconds = n.Seconds()
	} else {
		_ = heal()
		return run, fmt.Errorf("partition: %s: the sides never lost each other: the cut did not hold", name)
	}
	if kc == nil {
		run.NoticedSeconds = 0 // Block closes at once: nothing to notice
	}
	if m.converged() {
		_ = heal()
		return run, errors.New("partition: the sides agree before the heal: the cut did not hold")
	}
	var direct0, gossip0 uint64
	for _, n := range m.nodes {
		s := n.Transport().Stats()
		direct0 += s.DirectBytesOut
		gossip0 += s.GossipBytesOut
	}
	if err := heal(); err != nil {
		return run, fmt.Errorf("partition: heal: %w", err)
	}
	healed := time.Now()
	if err := waitFor(ctx, e.set.HealWithin, func() bool { return m.sidesLinked(true) }); err != nil {
		return run, fmt.Errorf("%w: %s: not reconnected %v after heal: %w", errNotConverged, name, e.set.HealWithin, err)
	}
	run.ConnectedSeconds = time.Since(healed).Seconds()
	if err := waitFor(ctx, e.set.HealWithin, m.converged); err != nil {
		return run, fmt.Errorf("%w: %s: %v after heal: %w", errNotConverged, name, e.set.HealWithin, err)
	}
	run.HealSeconds = time.Since(healed).Seconds()
	for _, n := range m.nodes {
		s := n.Transport().Stats()
		run.DirectBytes += s.DirectBytesOut
		run.GossipBytes += s.GossipBytesOut
	}
	run.DirectBytes -= direct0
	run.GossipBytes -= gossip0
	for side := range 2 {
		for i, tk := range tokens[side] {
			for _, n := range m.nodes {
				if err := checkSession(ctx, n.Node, tk, side*perSide+i); err != nil {
					return run, err
				}
			}
		}
	}
	return run, nil
}

type reconnectRuns struct {
	Rounds      int       `json:"rounds"`
	NoticedS    []float64 `json:"s_cut_to_noticed"`
	ConnectedS  []float64 `json:"s_heal_to_connected"`
	DialsPerSec float64   `json:"dials_per_s_per_side_while_cut"`
}

// measureReconnect cuts two peers from each other rounds times at the
// kernel, holding each cut 0.5-3 s after both sides noticed it (so that the
// heal falls anywhere in the redial cycle), and measures the time to
// notice, the time from heal to reconnected, and the dial rate meanwhile.
func measureReconnect(ctx context.Context, e *env, kc *netcut.Cutter, rounds int) (reconnectRuns, error) {
	r := reconnectRuns{Rounds: rounds}
	m, err := startMeshOn(ctx, "reconnect", "", reconnectIPs, persist.DurabilityNone)
	if err != nil {
		return r, err
	}
	defer m.close()
	a, b := m.nodes[0], m.nodes[1]
	up := func() bool { return linked(a, b) && linked(b, a) }
	down := func() bool { return !linked(a, b) && !linked(b, a) }
	var dials uint64
	var absent time.Duration
	for range rounds {
		if err := kc.Cut(reconnectIPs[0], reconnectIPs[1]); err != nil {
			return r, err
		}
		cutAt := time.Now()
		if err := waitFor(ctx, 30*time.Second, down); err != nil {
			_ = kc.Heal()
			return r, fmt.Errorf("reconnect: cut not noticed: %w", err)
		}
		r.NoticedS = append(r.NoticedS, time.Since(cutAt).Seconds())
		d0, t0 := a.Transport().Stats().DialAttempts+b.Transport().Stats().DialAttempts, time.Now()
		time.Sleep(500*time.Millisecond + rand.N(2500*time.Millisecond))
		if err := kc.Heal(); err != nil {
			return r, err
		}
		healed := time.Now()
		dials += a.Transport().Stats().DialAttempts + b.Transport().Stats().DialAttempts - d0
		absent += healed.Sub(t0)
		if err := waitFor(ctx, 30*time.Second, up); err != nil {
			return r, fmt.Errorf("%w: reconnect: not reconnected after heal: %w", errNotConverged, err)
		}
		r.ConnectedS = append(r.ConnectedS, time.Since(healed).Seconds())
	}
	r.DialsPerSec = float64(dials) / 2 / absent.Seconds()
	return r, nil
}

func percentile(xs []float64, p float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// benchPartition: convergence after partitions of the configured lengths,
// cut at the kernel (when root and iptables are available) and with Block.
func benchPartition(ctx context.Context, e *env) error {
	sec := "Convergence after a partition (peer 0 | peers 1, 2)"
	var kc *netcut.Cutter
	if err := netcut.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			return fmt.Errorf("partition: kernel cuts must run in CI: %w", err)
		}
		e.rep.note("Kernel-cut partition rows skipped: %v. Only the in-process Block rows ran.", err)
	} else {
		c, err := netcut.Open()
		if err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		defer c.Close()
		kc = c
		e.rep.note("Partitions \"kernel\": iptables drops every packet between peer 0's loopback address and peers 1 and 2's (internal/netcut), so connections stay open and silent and dials hang, as in a real partition; \"Block\": Transport().Block on both sides, which closes connections politely and redials at once on Unblock.")
	}
	var runs []partitionRun
	type plan struct {
		d  time.Duration
		kc *netcut.Cutter
	}
	var plans []plan
	if kc != nil {
		for _, d := range e.set.KernelParts {
			plans = append(plans, plan{d, kc})
		}
	}
	for _, d := range e.set.Partitions {
		plans = append(plans, plan{d, nil})
	}
	for _, p := range plans {
		r, err := measurePartition(ctx, e, p.d, e.set.PerSide, p.kc)
		runs = append(runs, r)
		e.rep.detail("partition_runs", runs)
		if err != nil {
			return err
		}
		how := "kernel cut"
		if p.kc == nil {
			how = "Block"
		}
		setup := fmt.Sprintf("%s; %d sessions of ~1 KiB written on each side, default SyncInterval %v", how, r.PerSide, nodeConfig("", "", 0).SyncInterval)
		label := fmt.Sprintf("%.0f s partition (%s)", p.d.Seconds(), how)
		heal := row{Section: sec, Measure: label + ": heal → identical digests", Unit: "s", SM: num(r.HealSeconds), SMSetup: setup}
		switch {
		case p.kc != nil && p.d >= 60*time.Second && 2*r.PerSide >= 20000:
			heal.Target = "< 2 s after 60 s and 300 s cuts with 20k diverged sessions"
		default:
			heal.Target = "< 2 s (target is for 60 s and 300 s kernel cuts and 20k sessions; indicative here)"
		}
		if r.HealSeconds < 2 {
			heal.Standing = fmt.Sprintf("met, %.2f s", r.HealSeconds)
		} else {
			heal.Standing = fmt.Sprintf("missed, %.2f s", r.HealSeconds)
		}
		e.rep.add(row{Section: sec, Measure: label + ": heal → reconnected", Unit: "s", SM: num(r.ConnectedSeconds), SMSetup: setup})
		e.rep.add(heal)
		if p.kc != nil {
			noticed := row{Section: sec, Measure: label + ": cut → noticed on both sides", Unit: "s", SM: num(r.NoticedSeconds), SMSetup: setup, Target: "< 5 s"}
			noticed.Standing = standing(r.NoticedSeconds < 5, r.NoticedSeconds)
			e.rep.add(noticed)
		}
		e.rep.add(row{Section: sec, Measure: label + ": anti-entropy bytes exchanged", Unit: "MiB", SM: num(float64(r.DirectBytes) / (1 << 20)), SMSetup: setup})
	}
	if kc == nil || e.set.ReconnectRuns == 0 {
		return nil
	}
	rr, err := measureReconnect(ctx, e, kc, e.set.ReconnectRuns)
	e.rep.detail("reconnect_runs", rr)
	if err != nil {
		return err
	}
	sec = "Kernel cuts between two peers (no data)"
	setup := fmt.Sprintf("%d cuts, each held 0.5-3 s after both sides noticed it; default FailureTimeout, RedialInterval, DialTimeout", rr.Rounds)
	p99 := percentile(rr.ConnectedS, 0.99)
	e.rep.add(row{Section: sec, Measure: "heal → reconnected, p50", Unit: "s", SM: num(percentile(rr.ConnectedS, 0.5)), SMSetup: setup})
	e.rep.add(row{Section: sec, Measure: "heal → reconnected, p99", Unit: "s", SM: num(p99), SMSetup: setup,
		Target: "< 1 s", Standing: standing(p99 < 1, p99)})
	np99 := percentile(rr.NoticedS, 0.99)
	e.rep.add(row{Section: sec, Measure: "cut → noticed on both sides, p99", Unit: "s", SM: num(np99), SMSetup: setup,
		Target: "< 5 s", Standing: standing(np99 < 5, np99)})
	e.rep.add(row{Section: sec, Measure: "dials while cut off, per side", Unit: "dials/s", SM: num(rr.DialsPerSec), SMSetup: setup,
		Target: "≤ about 1", Standing: standing(rr.DialsPerSec <= 1.1, rr.DialsPerSec)})
	return nil
}

func standing(met bool, v float64) string {
	if met {
		return fmt.Sprintf("met, %.2f", v)
	}
	return fmt.Sprintf("missed, %.2f", v)
}
