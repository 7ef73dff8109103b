package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Phase redisfront: redis-benchmark (one binary for both) against the Redis
// front of one daemon of a 3-daemon mesh and against redis-server, GET,
// SET, HSET and HGETALL at several client counts, with and without
// pipelining, in interleaved rounds.

// benchValue is the value SET writes: a small session blob.
const benchValue = `{"user":"alice","cart":3,"csrf":"Yq3c0n2Qk9J1xkq8","ts":1764547200}`

// redisBenchKeys is the key space of the rounds (-r).
const redisBenchKeys = 10_000

// rbResult is one redis-benchmark run.
type rbResult struct {
	RPS   float64 `json:"rps"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
}

// runRedisBenchmark runs redis-benchmark with a custom command and parses
// its CSV line.
func runRedisBenchmark(ctx context.Context, bin, addr string, clients, pipeline, requests int, command []string) (rbResult, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-P", strconv.Itoa(pipeline),
		"-n", strconv.Itoa(requests), "-r", strconv.Itoa(redisBenchKeys), "--csv"}
	args = append(args, command...)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	// stderr has warnings such as "Could not fetch server CONFIG" (the
	// front has no Redis configuration to show); the CSV is on stdout.
	cmd := exec.CommandContext(cctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return rbResult{}, fmt.Errorf("redis-benchmark %s: %w\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	// The second line is "test","rps","avg","min","p50","p95","p99","max";
	// the test name is the command, whose quotes redis-benchmark does not
	// escape, so the figures are read from the end.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	cols := strings.Split(lines[len(lines)-1], ",")
	if len(lines) < 2 || len(cols) < 8 {
		return rbResult{}, fmt.Errorf("redis-benchmark %s: unexpected output %q", strings.Join(args, " "), out)
	}
	figs := cols[len(cols)-7:] // rps avg min p50 p95 p99 max
	var r rbResult
	for i, dst := range map[int]*float64{0: &r.RPS, 3: &r.P50ms, 5: &r.P99ms} {
		if *dst, err = strconv.ParseFloat(strings.Trim(figs[i], `"`), 64); err != nil {
			return rbResult{}, fmt.Errorf("redis-benchmark: figure %d of %q: %w", i, lines[len(lines)-1], err)
		}
	}
	return r, nil
}

// redisFrontOps are the commands measured. Hashes hold a few fields, as a
// Spring session does.
var redisFrontOps = []struct {
	name    string
	command []string
}{
	{"GET", []string{"GET", "key:__rand_int__"}},
	{"SET", []string{"SET", "key:__rand_int__", benchValue, "EX", "1800"}},
	{"HSET", []string{"HSET", "hash:__rand_int__", "lastAccessedTime", "__rand_int__"}},
	{"HGETALL", []string{"HGETALL", "hash:__rand_int__"}},
}

// fillKeys writes every key the rounds read, as redis-benchmark's -r names
// them (12 digits).
func fillKeys(ctx context.Context, c *redis.Client) error {
	p := c.Pipeline()
	for i := range redisBenchKeys {
		k := fmt.Sprintf("%012d", i)
		p.Set(ctx, "key:"+k, benchValue, 30*time.Minute)
		p.HSet(ctx, "hash:"+k, "creationTime", "1764547200000", "lastAccessedTime", "1764547200000",
			"maxInactiveInterval", "1800", "sessionAttr:user", "alice")
		if p.Len() >= 512 || i == redisBenchKeys-1 {
			if _, err := p.Exec(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func benchRedisFront(ctx context.Context, e *env) error {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return fmt.Errorf("redisfront: redis-benchmark not found (Debian: redis-tools, which redis-server pulls in): %w", err)
	}
	ds, err := startDaemonMesh(ctx, e, "redisfront", 3, "--redis", "127.0.0.1:0", "--mesh", "bench-redisfront")
	defer stopDaemons(e, ds)
	if err != nil {
		return fmt.Errorf("redisfront: %w", err)
	}
	for i, d := range ds {
		if d.redis == "" {
			return fmt.Errorf("redisfront: daemon %d printed no redis address", i)
		}
	}
	fronts := make([]*redis.Client, len(ds))
	for i, d := range ds {
		fronts[i] = redis.NewClient(&redis.Options{Addr: d.redis, PoolSize: 64})
		defer fronts[i].Close()
	}
	rd := e.redisAOF
	for _, c := range []*redis.Client{fronts[0], rd} {
		if err := fillKeys(ctx, c); err != nil {
			return fmt.Errorf("redisfront: filling keys: %w", err)
		}
	}
	smAddr, rAddr := ds[0].redis, rd.Options().Addr

	sec := "Redis protocol: redis-benchmark against the Redis front of 1 of 3 daemons vs redis-server"
	const (
		setSM = "3 daemons (every write replicated to 2), durability none, redis-benchmark -r 10000"
		setR  = "appendfsync everysec, same redis-benchmark"
	)
	details := map[string]any{}
	for _, pipe := range e.set.RedisPipelines {
		for _, c := range e.set.RedisClients {
			for _, op := range redisFrontOps {
				n := e.set.RedisRequests
				if pipe > 1 {
					n = e.set.RedisRequestsPipelined
				}
				var sm, rr []rbResult
				// CPU per request: the three daemons together (the
				// front's peer and the two replicas) and redis-server.
				var smCPU, rCPU []float64
				cpuOK := true
				for r := range e.set.RedisRounds {
					order := []bool{true, false}
					if r%2 == 1 {
						order = []bool{false, true}
					}
					for _, isSM := range order {
						addr := rAddr
						if isSM {
							addr = smAddr
						}
						cpu := func() (time.Duration, error) { return redisCPU(ctx, rd) }
						if isSM {
							cpu = func() (time.Duration, error) { return daemonsCPU(ds) }
						}
						awaitQuiet(ctx, ds, e.set.RedisQuiet)
						before, errB := cpu()
						res, err := runRedisBenchmark(ctx, bin, addr, c, pipe, n, op.command)
						if err != nil {
							return err
						}
						after, errA := cpu()
						if errB != nil || errA != nil {
							// No /proc (not Linux): the rates stand alone.
							cpuOK = false
						}
						perReq := float64((after - before).Microseconds()) / float64(n)
						if isSM {
							sm = append(sm, res)
							smCPU = append(smCPU, perReq)
						} else {
							rr = append(rr, res)
							rCPU = append(rCPU, perReq)
						}
					}
				}
				w := fmt.Sprintf("%d client%s", c, plural(c))
				if pipe > 1 {
					w += fmt.Sprintf(", -P %d", pipe)
				}
				cmd := strings.Join(op.command, " ")
				if op.name == "SET" {
					cmd = fmt.Sprintf("SET key:__rand_int__ <%d-byte JSON> EX 1800", len(benchValue))
				}
				rps := rbRow(sec, op.name+" requests/s, "+w, "req/s", sm, rr, func(x rbResult) float64 { return x.RPS }, setSM, setR)
				if op.name == "GET" || op.name == "HGETALL" {
					atLeastTarget(&rps, 1.0, "≥ 1.0× Redis")
				} else {
					atLeastTarget(&rps, 0.5, "≥ 0.5× Redis, replicated")
				}
				e.rep.add(rps)
				e.rep.add(rbRow(sec, op.name+" p99, "+w, "µs", sm, rr, func(x rbResult) float64 { return x.P99ms * 1000 }, setSM, setR))
				if cpuOK {
					e.rep.add(cpuRow(sec, op.name+" CPU per request, "+w, smCPU, rCPU, setSM, setR))
				}
				details[fmt.Sprintf("%s c=%d P=%d", op.name, c, pipe)] = map[string]any{
					"command":     fmt.Sprintf("redis-benchmark -c %d -P %d -n %d -r %d --csv %s", c, pipe, n, redisBenchKeys, cmd),
					"sessionmesh": sm, "redis": rr,
					"sessionmesh_cpu_us_per_request": smCPU, "redis_cpu_us_per_request": rCPU,
				}
			}
		}
	}
	e.rep.detail("redisfront", details)

	// A write through daemon 0 after the rounds reaches the other two.
	probe, want := "bench:redisfront:probe", strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := fronts[0].Set(ctx, probe, want, 0).Err(); err != nil {
		return fmt.Errorf("redisfront: probe write: %w", err)
	}
	for i, f := range fronts[1:] {
		if err := waitFor(ctx, e.set.ConvergeWithin, func() bool {
			got, err := f.Get(ctx, probe).Result()
			return err == nil && got == want
		}); err != nil {
			return fmt.Errorf("%w: redisfront: the probe never reached daemon %d", errNotConverged, i+1)
		}
	}
	return nil
}

// cpuRow builds a row of CPU time per request from interleaved rounds:
// less sensitive than rates to what else runs on the machine, as it counts
// only what the servers spent.
func cpuRow(section, measure string, sm, rd []float64, setupSM, setupR string) row {
	var ratios []float64
	for i := range min(len(sm), len(rd)) {
		if rd[i] > 0 {
			ratios = append(ratios, sm[i]/rd[i])
		}
	}
	return row{
		Section: section, Measure: measure, Unit: "µs",
		SM: num(median(sm)), Redis: num(median(rd)), Ratio: num(median(ratios)),
		SMSetup: setupSM + " (CPU of the 3 daemons)", RedisSet: setupR, SMRounds: sm, RedisRounds: rd,
	}
}

// rbRow builds a row from interleaved redis-benchmark rounds: medians, and
// the median of per-round ratios.
func rbRow(section, measure, unit string, sm, rd []rbResult, f func(rbResult) float64, setupSM, setupR string) row {
	var a, b, ratios []float64
	for i := range min(len(sm), len(rd)) {
		a = append(a, f(sm[i]))
		b = append(b, f(rd[i]))
		if f(rd[i]) > 0 {
			ratios = append(ratios, f(sm[i])/f(rd[i]))
		}
	}
	return row{
		Section: section, Measure: measure, Unit: unit,
		SM: num(median(a)), Redis: num(median(b)), Ratio: num(median(ratios)),
		SMSetup: setupSM, RedisSet: setupR, SMRounds: a, RedisRounds: b,
	}
}
