package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/persist"
)

// The partial phase (issue 15): meshes of embedded peers in 3 regions on
// loopback libp2p, data on disk (durability none), with R = 1 holder per
// region and with full replication, one after the other in the same run.
// Each mesh is loaded with N sessions created on all of its peers at once
// (so 2 writes in 3 land on a peer that does not hold the session: hinted
// handoff), and timed until every copy is where it belongs. Then, per
// mesh, the disk of every peer, (R = 1) read latency on a holder and on a
// non-holder against Redis HGETALL, and the resident memory of one peer
// reopened alone on its data in a fresh process.

var partialRegions = []string{"eu", "us", "ap"}

// partialMesh is one mesh of the phase.
type partialMesh struct {
	*mesh
	replicas, perRegion int
}

func startPartialMesh(ctx context.Context, e *env, perRegion, r int) (*partialMesh, error) {
	name := fmt.Sprintf("partial-%dx%d-r%d", len(partialRegions), perRegion, r)
	size := len(partialRegions) * perRegion
	m, err := startMeshWith(ctx, name, filepath.Join(e.work, name), size, persist.DurabilityNone, meshSetup{
		tweak: func(i int, cfg *p2pnode.Config) {
			cfg.Region = partialRegions[i/perRegion]
			cfg.Replicas = r
			// Nine peers on two shared cores: a holder may take longer
			// than the default 200 ms to answer a non-holder's read,
			// which then fails (node.ErrUnavailable) rather than wait.
			cfg.ConsistencyWait = 2 * time.Second
		},
		// Every peer connected to every other, in the gossip mesh of
		// some (a 9-peer topic keeps about 6 mesh peers each), and,
		// with R, placing slots over every region's members.
		formed: func(m *mesh) bool {
			for _, n := range m.nodes {
				if len(n.Peers()) != size-1 || len(n.Transport().MeshPeers()) < min(size-1, 3) {
					return false
				}
				if r == 0 {
					continue
				}
				// Every region's placement complete on every peer: a
				// writer that has not heard a hello of another region
				// sends that region's copy to a holder placement then
				// moves, and the copy arrives only by a later repair.
				p := n.Placement()
				if len(p.RegionMembers) != perRegion || len(p.Members) != len(partialRegions) {
					return false
				}
				for _, c := range p.Members {
					if c != perRegion {
						return false
					}
				}
			}
			return true
		},
		within: 60 * time.Second,
		what:   "peers, gossip mesh or placement",
	})
	if err != nil {
		return nil, err
	}
	return &partialMesh{mesh: m, replicas: r, perRegion: perRegion}, nil
}

// copiesWanted is the session copies the mesh stores once settled.
func (m *partialMesh) copiesWanted(count int) int {
	if m.replicas == 0 {
		return count * len(m.nodes)
	}
	return count * len(partialRegions) * min(m.replicas, m.perRegion)
}

// placed reports whether every copy is where it belongs: the mesh stores
// copiesWanted sessions and no peer keeps one it should hand off.
//
// The copy count is one atomic load per peer; placement status takes the
// peer's lock and scans its 4096 bucket digests, so it is asked only once
// the count is right (a hint not yet handed off is a copy too many).
func (m *partialMesh) placed(count int) bool {
	total := 0
	for _, n := range m.nodes {
		total += n.Store().(*persist.Store).Len()
	}
	if total != m.copiesWanted(count) {
		return false
	}
	for _, n := range m.nodes {
		if m.replicas > 0 && n.Placement().SlotsToHandOff != 0 {
			return false
		}
	}
	return true
}

// progress prints where placement stands (stderr): a long load shows
// what it waits for.
func (m *partialMesh) progress(since time.Duration, count int) {
	total, hand := 0, 0
	var per []string
	var dropped, undeliv, rejected, sendFailed uint64
	for _, n := range m.nodes {
		st := n.Transport().Stats()
		dropped += st.GossipDropped
		undeliv += st.GossipUndeliverable
		sendFailed += st.DirectSendFailed
		for _, v := range st.GossipRejected {
			rejected += v
		}
		l := n.Store().(*persist.Store).Len()
		total += l
		h := n.Placement().SlotsToHandOff
		hand += h
		per = append(per, fmt.Sprintf("%d/%d", l, h))
	}
	fmt.Fprintf(os.Stderr, "partial: mesh %s at %.0f s: %d of %d copies, %d slots to hand off (per peer sessions/slots: %s); gossip dropped %d, undeliverable %d, rejected %d; direct sends failed %d\n",
		m.name, since.Seconds(), total, m.copiesWanted(count), hand, strings.Join(per, " "), dropped, undeliv, rejected, sendFailed)
}

// partialIdle is the idle timeout of the phase's sessions: a 1M load runs
// for most of an hour on this machine, past the default 30 minutes, and
// the first sessions created were then expired (not found) when checked.
const partialIdle = 6 * time.Hour

// placedPoll is how often load checks whether the mesh is placed: at the
// 2 ms of waitFor, asking nine peers for their placement was a seventh of
// the process's CPU and held their locks against the writes being timed.
const placedPoll = 50 * time.Millisecond

// placeWithin bounds the wait for a mesh of count sessions to be placed:
// 20 ms a session (50 placed a second; the 9-peer full-replication mesh
// placed 171 a second on this machine under heavy load, and its 6-peer
// mesh of 20k sessions took 181 s of the 200 s that 10 ms a session gave).
func placeWithin(e *env, count int) time.Duration {
	return max(e.set.ConvergeWithin, time.Duration(count)*20*time.Millisecond)
}

// CPUPerSession is the mesh's CPU time per session loaded, in µs.
func (l partialLoad) CPUPerSession() float64 { return l.CPUSeconds / float64(l.Sessions) * 1e6 }

// partialLoad is what loading a mesh measured.
type partialLoad struct {
	Peers, Replicas, Sessions int
	AckSeconds                float64 // every create acknowledged
	PlacedSeconds             float64 // every copy where it belongs
	WritesPerSec              float64 // Sessions / PlacedSeconds
	// CPUSeconds is the CPU time of this process (every peer of the mesh
	// runs in it) from the first create until placed.
	CPUSeconds      float64
	DiskPerPeer     []int64
	SessionsPerPeer []int
}

// load creates count standard sessions spread over every peer (conc
// writers each) and waits until they are placed.
func (m *partialMesh) load(ctx context.Context, count, conc int, within time.Duration) (partialLoad, []string, error) {
	res := partialLoad{Peers: len(m.nodes), Replicas: m.replicas, Sessions: count}
	tokens := make([]string, count)
	errs := make(chan error, len(m.nodes))
	cpu0, _ := processCPU(os.Getpid())
	start := time.Now()
	per := (count + len(m.nodes) - 1) / len(m.nodes)
	for i, n := range m.nodes {
		base := i * per
		cnt := max(0, min(per, count-base))
		go func() {
			ts, err := createSessions(ctx, n.Node, base, cnt, conc, node.WithIdleTimeout(partialIdle))
			copy(tokens[base:], ts)
			errs <- err
		}()
	}
	// While the writers run, the copies stored so far every 10 s: a 1M
	// load takes tens of minutes.
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	var first error
	for done := 0; done < len(m.nodes); {
		select {
		case err := <-errs:
			done++
			if err != nil && first == nil {
				first = err
			}
		case <-tick.C:
			m.progress(time.Since(start), count)
		}
	}
	if first != nil {
		return res, nil, fmt.Errorf("mesh %s: load: %w", m.name, first)
	}
	res.AckSeconds = time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "partial: mesh %s: %d sessions acknowledged in %.1f s\n", m.name, count, res.AckSeconds)
	lastLog := time.Now()
	if err := waitEvery(ctx, within, placedPoll, func() bool {
		if time.Since(lastLog) >= 2*time.Second {
			lastLog = time.Now()
			m.progress(time.Since(start), count)
		}
		return m.placed(count)
	}); err != nil {
		total := 0
		var per []string
		for _, n := range m.nodes {
			l := n.Store().(*persist.Store).Len()
			total += l
			per = append(per, fmt.Sprintf("%d (%d slots to hand off)", l, n.Placement().SlotsToHandOff))
		}
		return res, nil, fmt.Errorf("%w: mesh %s stores %d copies of %d sessions after %v, want %d (per peer: %s): %w",
			errNotConverged, m.name, total, count, within, m.copiesWanted(count), strings.Join(per, ", "), err)
	}
	res.PlacedSeconds = time.Since(start).Seconds()
	res.WritesPerSec = float64(count) / res.PlacedSeconds
	if cpu1, err := processCPU(os.Getpid()); err == nil && cpu0 > 0 {
		res.CPUSeconds = (cpu1 - cpu0).Seconds()
	}
	for _, n := range m.nodes {
		st := n.Store().(*persist.Store)
		du, err := st.DiskUsage()
		if err != nil {
			return res, nil, err
		}
		res.DiskPerPeer = append(res.DiskPerPeer, du)
		res.SessionsPerPeer = append(res.SessionsPerPeer, st.Len())
	}
	return res, tokens, nil
}

// checkPlacement checks a sample of sessions: stored on exactly
// min(R, per region) peers of every region (every peer under full
// replication) with every field intact, and read whole on every peer.
func (m *partialMesh) checkPlacement(ctx context.Context, tokens []string) error {
	want := min(m.replicas, m.perRegion)
	if m.replicas == 0 {
		want = m.perRegion
	}
	for seq := 0; seq < len(tokens); seq += max(1, len(tokens)/200) {
		id, ok := node.SessionID(tokens[seq])
		if !ok {
			return fmt.Errorf("partial: token %d is malformed", seq)
		}
		copies := map[string]int{}
		for i, n := range m.nodes {
			if _, err := n.Store().Get(id); err == nil {
				copies[partialRegions[i/m.perRegion]]++
			}
		}
		for _, rg := range partialRegions {
			if copies[rg] != want {
				return fmt.Errorf("%w: mesh %s: session %d has %d copies in %s, want %d", errLost, m.name, seq, copies[rg], rg, want)
			}
		}
		if err := checkSession(ctx, m.nodes[seq%len(m.nodes)].Node, tokens[seq], seq); err != nil {
			return err
		}
	}
	return nil
}

// closeKeep closes the mesh's peers and keeps their data.
func (m *partialMesh) closeKeep() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range m.nodes {
		_ = n.Close(ctx)
	}
	m.nodes = nil
}

// benchPartial is the phase: see the comment at the top of the file.
func benchPartial(ctx context.Context, e *env) error {
	if err := benchPartialScale(ctx, e); err != nil {
		return err
	}
	count := e.set.PartialSessions
	if count <= 0 {
		return nil
	}
	// Full replication stores every session on all 9 peers: at 1M that is
	// 9M copies written by 9 peers sharing this machine's cores. It may be
	// run at a smaller size (PartialFullSessions); the rows then compare
	// per session and say so.
	fullCount := count
	if e.set.PartialFullSessions > 0 {
		fullCount = min(count, e.set.PartialFullSessions)
	}
	sec := fmt.Sprintf("Partial replication: %s sessions over 9 peers (3 regions × 3), R = 1 against full replication (issue 15)", fmtCount(count))
	if fullCount != count {
		sec = fmt.Sprintf("Partial replication: 9 peers (3 regions × 3), R = 1 with %s sessions against full replication with %s (issue 15)", fmtCount(count), fmtCount(fullCount))
	}
	details := map[string]any{"sessions_replicas_1": count, "sessions_replicas_0": fullCount}
	defer e.rep.detail("partial", details)

	// R = 1 first (the figures the phase is about, reads on its mesh),
	// then full replication: a run cut short (interrupted, or full
	// replication not placed in time) still reports R = 1's rows, with
	// n/a for full replication. Each mesh: load, checks, the memory of
	// one peer reopened alone, then its data goes.
	loads := map[int]partialLoad{}
	mems := map[int]memResult{}
	defer func() { addPartialRows(e, sec, count, fullCount, loads, mems) }()
	for _, r := range []int{1, 0} {
		n := count
		if r == 0 {
			n = fullCount
		}
		m, err := startPartialMesh(ctx, e, len(partialRegions), r)
		if err != nil {
			return err
		}
		ld, tokens, err := m.load(ctx, n, e.set.PartialWriters, placeWithin(e, n))
		if err == nil {
			// Kept before the checks: a failed check still leaves
			// what the load measured in the results.
			details[fmt.Sprintf("load_replicas_%d", r)] = ld
			err = m.checkPlacement(ctx, tokens)
		}
		if err == nil && r == 1 {
			err = benchPartialReads(ctx, e, sec, m, tokens, details)
		}
		if err != nil {
			m.close()
			return err
		}
		loads[r] = ld
		m.closeKeep()
		mem, err := reopenChild(ctx, e, filepath.Join(m.dir, "node0"))
		_ = os.RemoveAll(m.dir)
		if err != nil {
			return err
		}
		mems[r] = mem
		details[fmt.Sprintf("memory_replicas_%d", r)] = mem
	}
	return nil
}

// addPartialRows adds the partial phase's rows of R = 1 against full
// replication, from what was reached: a figure not measured is n/a.
func addPartialRows(e *env, sec string, count, fullCount int, loads map[int]partialLoad, mems map[int]memResult) {
	part, okP := loads[1]
	full, okF := loads[0]
	if !okP && !okF {
		return
	}
	// scale brings a full-replication figure that grows with the sessions
	// stored to the R = 1 mesh's size, for the ratio (1 when both meshes
	// were loaded with the same count).
	scale := float64(count) / float64(fullCount)
	fig := func(ok bool, v float64) *float64 {
		if !ok {
			return nil
		}
		return num(v)
	}
	ratioRow := func(measure, unit string, f, p *float64, perSession bool, setup string) row {
		rw := row{Section: sec, Measure: measure, Unit: unit, SM: p}
		switch {
		case f == nil:
			rw.SMSetup = setup + "; full replication not reached in this run (ratio column: R = 1 ÷ full)"
			return rw
		case p == nil:
			rw.SMSetup = setup + fmt.Sprintf("; R = 1 not reached; full replication %s (ratio column: R = 1 ÷ full)", fmtNum(f))
			return rw
		}
		sc, note := 1.0, ""
		if scale != 1 {
			note = fmt.Sprintf(" with %s sessions", fmtCount(fullCount))
			if perSession {
				sc = scale
				note = fmt.Sprintf(" with %s sessions; ratio against it × %s/%s (per session)", fmtCount(fullCount), fmtCount(count), fmtCount(fullCount))
			}
		}
		rw.Ratio = num(*p / (*f * sc))
		rw.SMSetup = setup + fmt.Sprintf("; full replication %s%s (ratio column: R = 1 ÷ full)", fmtNum(f), note)
		return rw
	}
	w := ratioRow("mesh writes/s, R = 1 (full replication in setup; ratio R=1/full)", "writes/s", fig(okF, full.WritesPerSec), fig(okP, part.WritesPerSec), false,
		fmt.Sprintf("%d sessions created on all 9 peers at once (%d writers each), until every copy is placed (R = 1: one per region, handoffs done)", count, e.set.PartialWriters))
	w.Target = "grows with peers: more than full replication's"
	switch {
	case w.Ratio == nil:
		w.Standing = "not judged: one of the two meshes was not reached"
	case count < 20_000:
		// A smoke size: the time until placed is mostly the handoff
		// interval (2 s) the last hints wait for.
		w.Standing = "too few sessions to judge"
	case *w.Ratio > 1:
		w.Standing = fmt.Sprintf("met, %.2f×", *w.Ratio)
	default:
		w.Standing = fmt.Sprintf("missed, %.2f×", *w.Ratio)
	}
	e.rep.add(w)
	e.rep.add(ratioRow("CPU per session placed, R = 1 (ratio R=1/full)", "µs", fig(okF, full.CPUPerSession()), fig(okP, part.CPUPerSession()), false,
		"CPU time of the process running the 9 peers (all threads, /proc schedstat) from the first create until every copy is placed, ÷ sessions: what a write costs the whole mesh, whatever else shares the machine"))
	e.rep.add(ratioRow("disk per peer, R = 1 (ratio R=1/full)", "MB", fig(okF, mean64(full.DiskPerPeer)/1e6), fig(okP, mean64(part.DiskPerPeer)/1e6), true,
		"persist.Store.DiskUsage, mean over the 9 peers once placed"))
	e.rep.add(ratioRow("sessions stored per peer, R = 1 (ratio R=1/full)", "sessions", fig(okF, meanInt(full.SessionsPerPeer)), fig(okP, meanInt(part.SessionsPerPeer)), true,
		"persist.Store.Len, mean over the 9 peers"))
	mf, okMF := mems[0]
	mp, okMP := mems[1]
	e.rep.add(ratioRow("resident memory of a peer, R = 1 (ratio R=1/full)", "MB", fig(okMF, float64(mf.RSSReopened)/1e6), fig(okMP, float64(mp.RSSReopened)/1e6), false,
		"VmRSS of peer 0 reopened alone on its data in a fresh process, after GC"))
	e.rep.add(ratioRow("resident memory of a peer, anonymous, R = 1 (ratio R=1/full)", "MB", fig(okMF, float64(mf.RSSAnonReopened)/1e6), fig(okMP, float64(mp.RSSAnonReopened)/1e6), false,
		"RssAnon of the same process"))
}

// benchPartialReads times node.Get of whole sessions on peer 0 of the R = 1
// mesh, of sessions it holds and of sessions it does not (one hop to the
// holder in its region), against HGETALL, in interleaved rounds.
func benchPartialReads(ctx context.Context, e *env, sec string, m *partialMesh, tokens []string, details map[string]any) error {
	n := m.nodes[0]
	var held, other []int
	for seq, tk := range tokens {
		id, ok := node.SessionID(tk)
		if !ok {
			return fmt.Errorf("partial: token %d is malformed", seq)
		}
		if _, err := n.Store().Get(id); err == nil {
			held = append(held, seq)
		} else if errors.Is(err, persist.ErrNotFound) {
			other = append(other, seq)
		} else {
			return err
		}
	}
	if len(held) == 0 || len(other) == 0 {
		return fmt.Errorf("partial reads: peer 0 holds %d and lacks %d of %d sessions", len(held), len(other), len(tokens))
	}
	redisCount := min(len(tokens), 100_000)
	rtokens, err := loadRedisSessions(ctx, e.redis, 0, redisCount, 4)
	if err != nil {
		return fmt.Errorf("partial reads: load redis: %w", err)
	}
	defer e.redis.FlushAllAsync(ctx)
	// Every read is of a session not read before in this phase: a
	// non-holder serves a repeat within a second from its cache of what it
	// read, and this row is about the hop to the holder. So each round is
	// a fixed count of sequential reads (the same count for the three
	// contenders), not a fixed time.
	perRound := min(len(other)/(e.set.Rounds+1), 5000)
	if perRound < 50 {
		return fmt.Errorf("partial reads: %d sessions not held by peer 0 is too few for %d rounds", len(other), e.set.Rounds)
	}
	get := func(seqs []int, cursor *int) func() error {
		return func() error {
			seq := seqs[*cursor%len(seqs)]
			*cursor++
			s, err := n.Get(ctx, tokens[seq])
			if err != nil {
				return fmt.Errorf("%w: read session %d on %s: %w", errLost, seq, n.ID(), err)
			}
			if f := s.Fields(); len(f) != sessionFields {
				return fmt.Errorf("%w: read session %d on %s: %d fields", errLost, seq, n.ID(), len(f))
			}
			return nil
		}
	}
	var hc, oc, rc int
	holderRead, otherRead := get(held, &hc), get(other, &oc)
	redisRead := func() error {
		seq := rc % redisCount
		rc++
		f, err := e.redis.HGetAll(ctx, redisKey(rtokens[seq])).Result()
		if err != nil {
			return err
		}
		if len(f) != sessionFields {
			return fmt.Errorf("%w: redis session %d: %d fields", errLost, seq, len(f))
		}
		return nil
	}
	counted := func(op func() error) func() (loadResult, error) {
		return func() (loadResult, error) { return countedLoad(ctx, perRound, op) }
	}
	// Warm-up: one round's worth of each (connections, caches).
	for _, op := range []func() error{holderRead, otherRead, redisRead} {
		if _, err := countedLoad(ctx, perRound, op); err != nil {
			return err
		}
	}
	rs, err := interleave(e.set.Rounds, counted(holderRead), counted(otherRead), counted(redisRead))
	if err != nil {
		return err
	}
	details["reads"] = map[string]any{"held_by_peer0": len(held), "not_held_by_peer0": len(other),
		"redis_sessions": redisCount, "reads_per_round": perRound, "non_holder_reads": oc}
	const (
		setupH = "node.Get + Session.Fields on a holder (R = 1), distinct sessions, 1 goroutine"
		setupO = "node.Get + Session.Fields on a non-holder: fetched from the holder in its region over libp2p, distinct sessions (never its cache), 1 goroutine"
		setupR = "HGETALL over loopback, 1 goroutine"
	)
	e.rep.add(pairRow(sec, "read p50 on a holder", "µs", rs[0], rs[2], fP50, setupH, setupR))
	e.rep.add(pairRow(sec, "read p99 on a holder", "µs", rs[0], rs[2], fP99, setupH, setupR))
	e.rep.add(pairRow(sec, "read p50 on a non-holder", "µs", rs[1], rs[2], fP50, setupO, setupR))
	e.rep.add(pairRow(sec, "read p99 on a non-holder", "µs", rs[1], rs[2], fP99, setupO, setupR))
	return nil
}

// reopenChild runs `harness memchild -reopen` on a peer's data directory:
// the resident memory of that peer restarted alone on its data.
func reopenChild(ctx context.Context, e *env, dir string) (memResult, error) {
	return runChild(ctx, e, "-reopen", "-dir", dir)
}

func mean64(xs []int64) float64 {
	var t float64
	for _, x := range xs {
		t += float64(x)
	}
	return t / float64(max(1, len(xs)))
}

func meanInt(xs []int) float64 {
	var t float64
	for _, x := range xs {
		t += float64(x)
	}
	return t / float64(max(1, len(xs)))
}

// countedLoad calls op k times in a row and records each call's latency.
func countedLoad(ctx context.Context, k int, op func() error) (loadResult, error) {
	h := &hist{}
	start := time.Now()
	t := start
	for range k {
		if err := ctx.Err(); err != nil {
			return loadResult{}, err
		}
		if err := op(); err != nil {
			return loadResult{}, err
		}
		t2 := time.Now()
		h.add(t2.Sub(t))
		t = t2
	}
	return loadResult{Ops: int64(k), Elapsed: time.Since(start), H: h}, nil
}

// benchPartialScale is the mesh's write rate as it grows: 3 regions of 1,
// 2 and 3 peers, full replication and R = 1 at each size, one after the
// other. With R = 1 a write is applied on 3 peers (one per region)
// whatever the size; with full replication on every peer. All peers share
// this machine's cores, so what a size's ratio R=1/full shows is the work
// per write the mesh saves (1 at 3 peers, where both settings are the
// same).
func benchPartialScale(ctx context.Context, e *env) error {
	count := e.set.PartialScaleSessions
	if count <= 0 || len(e.set.PartialScale) == 0 {
		return nil
	}
	sec := fmt.Sprintf("Partial replication: mesh writes/s as the mesh grows, %s sessions, R = 1 against full replication (issue 15)", fmtCount(count))
	within := placeWithin(e, count)
	details := map[string]any{}
	defer e.rep.detail("partial_scale", details)
	for _, per := range e.set.PartialScale {
		var loads [2]partialLoad
		for _, r := range []int{0, 1} {
			m, err := startPartialMesh(ctx, e, per, r)
			if err != nil {
				return err
			}
			ld, tokens, err := m.load(ctx, count, e.set.PartialWriters, within)
			if err == nil {
				err = m.checkPlacement(ctx, tokens)
			}
			m.close()
			if err != nil {
				return err
			}
			loads[r] = ld
			details[fmt.Sprintf("peers_%d_replicas_%d", 3*per, r)] = ld
		}
		full, part := loads[0].WritesPerSec, loads[1].WritesPerSec
		e.rep.add(row{Section: sec, Measure: fmt.Sprintf("mesh writes/s, %d peers, R = 1 (ratio R=1/full)", 3*per), Unit: "writes/s",
			SM: num(part), Ratio: num(part / full),
			SMSetup: fmt.Sprintf("%d sessions created on all %d peers at once (%d writers each), until every copy is placed; full replication %s",
				count, 3*per, e.set.PartialWriters, fmtNum(num(full)))})
	}
	return nil
}
