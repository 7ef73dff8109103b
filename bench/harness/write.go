package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sessionmesh/sessionmesh/persist"
)

// writeTarget is one system taking single-field writes to a pool of
// sessions. Writer w of c sets field "w<w>" of session slot(w, i, c): each
// writer walks its own stretch of the pool, so that concurrent writers
// rarely hit one session at once, as requests of different users do. last
// keeps,
// per writer and session, the number of the last acknowledged write, so
// that a check afterwards can find each one on every replica.
type writeTarget struct {
	pool int
	keys []string
	last [][]atomic.Int64
}

const writePool = 1024

func slot(w, i, c int) int { return (w*(writePool/c) + i) % writePool }

func newWriteTarget(writers int) *writeTarget {
	t := &writeTarget{pool: writePool}
	for w := range writers {
		t.keys = append(t.keys, fmt.Sprintf("w%d", w))
		row := make([]atomic.Int64, writePool)
		for i := range row {
			row[i].Store(-1)
		}
		t.last = append(t.last, row)
	}
	return t
}

// smWriter writes through node n and, after each round, waits until the
// mesh is identical and checks every last write on every peer.
type smWriter struct {
	*writeTarget
	m      *mesh
	tokens []string
	seq    atomic.Int64
	waits  []float64 // seconds to identical after each round
}

func (s *smWriter) op(ctx context.Context, c int) func(w, i int) error {
	n := s.m.nodes[0]
	return func(w, i int) error {
		slot := slot(w, i, c)
		v := s.seq.Add(1)
		if err := n.Set(ctx, s.tokens[slot], s.keys[w], valueFor(w, int(v))); err != nil {
			return fmt.Errorf("set: %w", err)
		}
		s.last[w][slot].Store(v)
		return nil
	}
}

func (s *smWriter) check(ctx context.Context, within time.Duration) error {
	d, err := s.m.waitConverged(ctx, within)
	if err != nil {
		return err
	}
	s.waits = append(s.waits, d.Seconds())
	for _, n := range s.m.nodes {
		for w := range s.last {
			for slot := range s.pool {
				v := s.last[w][slot].Load()
				if v < 0 {
					continue
				}
				ses, err := n.Get(ctx, s.tokens[slot])
				if err != nil {
					return fmt.Errorf("%w: write check on %s: %w", errLost, n.ID(), err)
				}
				got, _ := ses.Get(s.keys[w])
				if string(got) != string(valueFor(w, int(v))) {
					return fmt.Errorf("%w: mesh %s: peer %s lacks write %d of writer %d", errLost, s.m.name, n.ID(), v, w)
				}
			}
		}
	}
	return nil
}

// redisWriter writes HSETs to one redis-server.
type redisWriter struct {
	*writeTarget
	c      *redis.Client
	tokens []string
	seq    atomic.Int64
	// replicas, when set, is how many replicas must hold every write
	// before a round's check passes (WAIT).
	replicas int
}

func (r *redisWriter) op(ctx context.Context, c int) func(w, i int) error {
	return func(w, i int) error {
		slot := slot(w, i, c)
		v := r.seq.Add(1)
		if err := r.c.HSet(ctx, redisKey(r.tokens[slot]), r.keys[w], valueFor(w, int(v))).Err(); err != nil {
			return err
		}
		r.last[w][slot].Store(v)
		return nil
	}
}

func (r *redisWriter) check(ctx context.Context) error {
	if r.replicas > 0 {
		// Every write of the round reached the replicas, as every write
		// of the mesh's round reached the two other peers.
		n, err := r.c.Wait(ctx, r.replicas, 30*time.Second).Result()
		if err != nil {
			return fmt.Errorf("redis WAIT: %w", err)
		}
		if n < int64(r.replicas) {
			return fmt.Errorf("%w: %d of %d redis replicas acknowledged the round's writes", errLost, n, r.replicas)
		}
	}
	p := r.c.Pipeline()
	type want struct {
		cmd *redis.StringCmd
		val string
	}
	var wants []want
	for w := range r.last {
		for slot := range r.pool {
			if v := r.last[w][slot].Load(); v >= 0 {
				wants = append(wants, want{p.HGet(ctx, redisKey(r.tokens[slot]), r.keys[w]), string(valueFor(w, int(v)))})
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		return err
	}
	for _, x := range wants {
		if x.cmd.Val() != x.val {
			return fmt.Errorf("%w: redis lacks a write", errLost)
		}
	}
	return nil
}

// benchWrite: one field set on a peer of a 3-node mesh (2 peers
// replicating), durability none and sync, against HSET on redis-server
// without persistence and with appendonly/everysec.
func benchWrite(ctx context.Context, e *env) error {
	maxW := 0
	for _, c := range e.set.WriteConc {
		maxW = max(maxW, c)
	}
	var sms []*smWriter
	for _, d := range []persist.Durability{persist.DurabilityNone, persist.DurabilitySync} {
		name := "write-" + d.String()
		m, err := startMesh(ctx, name, filepath.Join(e.work, name), 3, d)
		if err != nil {
			return err
		}
		defer m.close()
		tokens, err := createSessions(ctx, m.nodes[0].Node, 0, writePool, 8)
		if err != nil {
			return err
		}
		if _, err := m.waitConverged(ctx, e.set.ConvergeWithin); err != nil {
			return err
		}
		sms = append(sms, &smWriter{writeTarget: newWriteTarget(maxW), m: m, tokens: tokens})
	}
	var rws []*redisWriter
	clients := []*redis.Client{e.redis, e.redisAOF}
	if e.redisRepl != nil {
		clients = append(clients, e.redisRepl)
	}
	for i, c := range clients {
		tokens, err := loadRedisSessions(ctx, c, 0, writePool, 2)
		if err != nil {
			return err
		}
		rw := &redisWriter{writeTarget: newWriteTarget(maxW), c: c, tokens: tokens}
		if i == 2 {
			rw.replicas = 2
		}
		rws = append(rws, rw)
	}
	smNone, smSync, rVol, rAOF := sms[0], sms[1], rws[0], rws[1]
	sec := "Session write of one field (sessionmesh: 3 peers, replicating; Redis: HSET)"
	for _, c := range e.set.WriteConc {
		smRound := func(s *smWriter, d time.Duration) (loadResult, error) {
			r, err := runLoad(ctx, c, d, s.op(ctx, c))
			if err != nil {
				return r, err
			}
			return r, s.check(ctx, e.set.ConvergeWithin)
		}
		redisRound := func(x *redisWriter, d time.Duration) (loadResult, error) {
			r, err := runLoad(ctx, c, d, x.op(ctx, c))
			if err != nil {
				return r, err
			}
			return r, x.check(ctx)
		}
		for _, s := range sms {
			if _, err := smRound(s, e.set.Warmup); err != nil {
				return err
			}
		}
		for _, x := range rws {
			if _, err := redisRound(x, e.set.Warmup); err != nil {
				return err
			}
		}
		d := e.set.WriteDur
		rounds := []func() (loadResult, error){
			func() (loadResult, error) { return smRound(smNone, d) },
			func() (loadResult, error) { return smRound(smSync, d) },
			func() (loadResult, error) { return redisRound(rVol, d) },
			func() (loadResult, error) { return redisRound(rAOF, d) },
		}
		if len(rws) > 2 {
			rounds = append(rounds, func() (loadResult, error) { return redisRound(rws[2], d) })
		}
		rs, err := interleave(e.set.Rounds, rounds...)
		if err != nil {
			return err
		}
		none, sync, vol, aof := rs[0], rs[1], rs[2], rs[3]
		const (
			setNone = "durability none"
			setSync = "durability sync"
			setAOF  = "appendfsync everysec"
			setVol  = "no persistence"
		)
		w := fmt.Sprintf("%d writer%s", c, plural(c))
		opsAOF := pairRow(sec, "writes/s, "+w+", none vs everysec", "ops/s", none, aof, fOps, setNone, setAOF)
		opsSync := pairRow(sec, "writes/s, "+w+", sync vs everysec", "ops/s", sync, aof, fOps, setSync, setAOF)
		opsVol := pairRow(sec, "writes/s, "+w+", none vs no persistence", "ops/s", none, vol, fOps, setNone, setVol)
		if c == 50 {
			const t = "≥ 2× Redis HSET throughput at 50 writers (ratio ≥ 2)"
			atLeastTarget(&opsAOF, 2, t)
			atLeastTarget(&opsSync, 2, t)
			atLeastTarget(&opsVol, 2, t)
		}
		e.rep.add(opsAOF)
		e.rep.add(opsSync)
		e.rep.add(opsVol)
		if len(rs) > 4 {
			// The same work on both sides: a write acknowledged by one
			// of three copies on this machine, replicated to the two
			// others.
			const setRepl = "primary + 2 replicas, everysec"
			opsRepl := pairRow(sec, "writes/s, "+w+", none vs primary+2 replicas", "ops/s", none, rs[4], fOps, setNone, setRepl)
			if c == 50 {
				atLeastTarget(&opsRepl, 2, "≥ 2× a Redis primary with two replicas at 50 writers (ratio ≥ 2)")
			}
			e.rep.add(opsRepl)
		}
		e.rep.add(pairRow(sec, "write p50, "+w+", none vs everysec", "µs", none, aof, fP50, setNone, setAOF))
		e.rep.add(pairRow(sec, "write p99, "+w+", none vs everysec", "µs", none, aof, fP99, setNone, setAOF))
		e.rep.add(pairRow(sec, "write p50, "+w+", sync vs everysec", "µs", sync, aof, fP50, setSync, setAOF))
		e.rep.add(pairRow(sec, "write p99, "+w+", sync vs everysec", "µs", sync, aof, fP99, setSync, setAOF))
	}
	e.rep.detail("write_seconds_to_identical_after_round", map[string][]float64{"none": smNone.waits, "sync": smSync.waits})
	return nil
}
