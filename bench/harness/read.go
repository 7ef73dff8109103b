package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/sessionmesh/sessionmesh/persist"
)

// benchRead: node.Get of a standard session on one peer of a 3-node mesh
// (embedded, no network) against HGETALL of the same hash on redis-server
// over loopback.
func benchRead(ctx context.Context, e *env) error {
	m, err := startMesh(ctx, "read", filepath.Join(e.work, "read"), 3, persist.DurabilityNone)
	if err != nil {
		return err
	}
	defer m.close()
	n := m.nodes[0]
	count := e.set.ReadSessions
	tokens, err := createSessions(ctx, n.Node, 0, count, 8)
	if err != nil {
		return fmt.Errorf("read: load sessions: %w", err)
	}
	rtokens, err := loadRedisSessions(ctx, e.redis, 0, count, 4)
	if err != nil {
		return fmt.Errorf("read: load redis: %w", err)
	}
	if _, err := m.waitConverged(ctx, e.set.ConvergeWithin); err != nil {
		return err
	}
	pick := func(w, i int) int { return (w*7919 + i*31) % count }
	// The read a handler does: the session, then one of its fields.
	smRead := func(w, i int) error {
		seq := pick(w, i)
		s, err := n.Get(ctx, tokens[seq])
		if err != nil {
			return fmt.Errorf("%w: read session %d: %w", errLost, seq, err)
		}
		if v, ok := s.Get(fieldKeys[i%sessionFields]); !ok || len(v) != valueBytes {
			return fmt.Errorf("%w: read session %d: field %s missing", errLost, seq, fieldKeys[i%sessionFields])
		}
		return nil
	}
	// The same, copying out every field as HGETALL does.
	smReadAll := func(w, i int) error {
		seq := pick(w, i)
		s, err := n.Get(ctx, tokens[seq])
		if err != nil {
			return fmt.Errorf("%w: read session %d: %w", errLost, seq, err)
		}
		if f := s.Fields(); len(f) != sessionFields {
			return fmt.Errorf("%w: read session %d: %d fields", errLost, seq, len(f))
		}
		return nil
	}
	// The same into the reader's own map, reused from read to read
	// (Session.FieldsInto), as a worker reading session after session
	// does: every field is still copied, into memory the reader keeps warm.
	into := make([]map[string][]byte, slices.Max(e.set.ReadConc))
	for w := range into {
		into[w] = map[string][]byte{}
	}
	smReadInto := func(w, i int) error {
		seq := pick(w, i)
		s, err := n.Get(ctx, tokens[seq])
		if err != nil {
			return fmt.Errorf("%w: read session %d: %w", errLost, seq, err)
		}
		s.FieldsInto(into[w])
		if f := into[w]; len(f) != sessionFields {
			return fmt.Errorf("%w: read session %d: %d fields", errLost, seq, len(f))
		}
		return nil
	}
	redisRead := func(w, i int) error {
		seq := pick(w, i)
		f, err := e.redis.HGetAll(ctx, redisKey(rtokens[seq])).Result()
		if err != nil {
			return err
		}
		if len(f) != sessionFields {
			return fmt.Errorf("%w: redis session %d: %d fields", errLost, seq, len(f))
		}
		return nil
	}
	// A full check of a sample, both sides, before timing anything.
	for seq := 0; seq < count; seq += max(1, count/200) {
		if err := checkSession(ctx, m.nodes[2].Node, tokens[seq], seq); err != nil {
			return err
		}
		f, err := e.redis.HGetAll(ctx, redisKey(rtokens[seq])).Result()
		if err != nil {
			return err
		}
		if err := checkRedisSession(f, seq); err != nil {
			return err
		}
	}
	for _, c := range e.set.ReadConc {
		// Warm up (caches, connections, goroutine stacks).
		for _, op := range []func(w, i int) error{smRead, smReadAll, smReadInto, redisRead} {
			if _, err := runLoad(ctx, c, e.set.Warmup, op); err != nil {
				return err
			}
		}
		rs, err := interleave(e.set.Rounds,
			func() (loadResult, error) { return runLoad(ctx, c, e.set.ReadDur, smRead) },
			func() (loadResult, error) { return runLoad(ctx, c, e.set.ReadDur, smReadAll) },
			func() (loadResult, error) { return runLoad(ctx, c, e.set.ReadDur, smReadInto) },
			func() (loadResult, error) { return runLoad(ctx, c, e.set.ReadDur, redisRead) },
		)
		if err != nil {
			return err
		}
		sm, smAll, smInto, rd := rs[0], rs[1], rs[2], rs[3]
		const (
			setupSM     = "node.Get + Session.Get (one field)"
			setupSMAll  = "node.Get + Session.Fields (all)"
			setupSMInto = "node.Get + Session.FieldsInto (all, into the reader's map)"
			setupR      = "HGETALL over loopback"
		)
		sec := "Edge read of a 10-field ~1 KiB session (embedded node vs go-redis over loopback)"
		g := fmt.Sprintf("%d goroutine%s", c, plural(c))
		p50 := pairRow(sec, "read p50, "+g, "µs", sm, rd, fP50, setupSM, setupR)
		if c == 1 {
			speedupTarget(&p50, 100, "≥ 100× faster than the HGETALL round trip (ratio ≤ 0.01)")
		}
		e.rep.add(p50)
		e.rep.add(pairRow(sec, "read p99, "+g, "µs", sm, rd, fP99, setupSM, setupR))
		e.rep.add(pairRow(sec, "reads/s, "+g, "ops/s", sm, rd, fOps, setupSM, setupR))
		all := pairRow(sec, "read p50, all fields copied, "+g, "µs", smAll, rd, fP50, setupSMAll, setupR)
		if c == 1 {
			speedupTarget(&all, 50, "≥ 50× faster than the HGETALL round trip (ratio ≤ 0.02)")
		}
		e.rep.add(all)
		e.rep.add(pairRow(sec, "read p99, all fields copied, "+g, "µs", smAll, rd, fP99, setupSMAll, setupR))
		e.rep.add(pairRow(sec, "reads/s, all fields copied, "+g, "ops/s", smAll, rd, fOps, setupSMAll, setupR))
		e.rep.add(pairRow(sec, "read p50, all fields, reused map, "+g, "µs", smInto, rd, fP50, setupSMInto, setupR))
		e.rep.add(pairRow(sec, "read p99, all fields, reused map, "+g, "µs", smInto, rd, fP99, setupSMInto, setupR))
		e.rep.add(pairRow(sec, "reads/s, all fields, reused map, "+g, "ops/s", smInto, rd, fOps, setupSMInto, setupR))
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// pairRow builds the row of figure f for two interleaved series.
func pairRow(section, measure, unit string, sm, rd []loadResult, f figure, setupSM, setupR string) row {
	return row{
		Section: section, Measure: measure, Unit: unit,
		SM: num(medianOf(sm, f)), Redis: num(medianOf(rd, f)), Ratio: num(ratioOf(sm, rd, f)),
		SMSetup: setupSM, RedisSet: setupR,
		SMRounds: roundsOf(sm, f), RedisRounds: roundsOf(rd, f),
	}
}

// speedupTarget marks a latency row whose target is to be at least x times
// faster than Redis.
func speedupTarget(r *row, x float64, target string) {
	r.Target = target
	speed := 1 / *r.Ratio
	if speed >= x {
		r.Standing = fmt.Sprintf("met, %.0f× faster", speed)
	} else {
		r.Standing = fmt.Sprintf("missed, %.1f× faster", speed)
	}
}

// atLeastTarget marks a row whose ratio should be at least x.
func atLeastTarget(r *row, x float64, target string) {
	r.Target = target
	if *r.Ratio >= x {
		r.Standing = fmt.Sprintf("met, %.2f×", *r.Ratio)
	} else {
		r.Standing = fmt.Sprintf("missed, %.2f×", *r.Ratio)
	}
}
