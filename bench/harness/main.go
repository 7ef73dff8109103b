// Command harness measures sessionmesh side by side with a real
// redis-server, interleaving the two systems' rounds on the same machine,
// and writes the table bench/run publishes. It is run by bench/run, which
// installs and starts the redis-servers and builds the daemon:
//
//	harness run [--quick] --redis ADDR --redis-aof ADDR --daemon BIN --work DIR --out DIR
//	harness memchild -n N -dir DIR   (a fresh process for the memory figures)
//	harness freeport                 (prints a free loopback TCP port)
//
// It exits 1 when a measurement errors or loses data (peers that do not
// converge, a read missing a written field), never because a figure is slow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// settings size a run.
type settings struct {
	Rounds         int             `json:"rounds"`
	Warmup         time.Duration   `json:"warmup"`
	ReadDur        time.Duration   `json:"read_round"`
	ReadSessions   int             `json:"read_sessions"`
	ReadConc       []int           `json:"read_concurrency"`
	WriteDur       time.Duration   `json:"write_round"`
	WriteConc      []int           `json:"write_concurrency"`
	LagRates       []int           `json:"lag_rates"`
	LagDur         time.Duration   `json:"lag_run"`
	LagRounds      int             `json:"lag_rounds"`
	MaxDur         time.Duration   `json:"max_rate_run"`
	MaxRounds      int             `json:"max_rate_rounds"`
	Partitions     []time.Duration `json:"partitions"`        // cut with Transport().Block
	KernelParts    []time.Duration `json:"kernel_partitions"` // cut at the kernel (internal/netcut)
	ReconnectRuns  int             `json:"reconnect_rounds"`  // short kernel cuts between two peers
	PerSide        int             `json:"sessions_per_side"`
	MemSizes       []int           `json:"memory_sessions"`
	MemIdle        time.Duration   `json:"memory_idle"` // 0: no idle measurement
	HTTPConc       []int           `json:"http_concurrency"`
	HTTPDur        time.Duration   `json:"http_round"`
	ConvergeWithin time.Duration   `json:"converge_within"`
	HealWithin     time.Duration   `json:"heal_within"`
	// The redisfront phase: redis-benchmark client counts and pipeline
	// depths, requests per run without and with a pipeline, rounds.
	RedisClients           []int `json:"redis_clients"`
	RedisPipelines         []int `json:"redis_pipelines"`
	RedisRequests          int   `json:"redis_requests"`
	RedisRequestsPipelined int   `json:"redis_requests_pipelined"`
	RedisRounds            int   `json:"redis_rounds"`
	// RedisQuiet bounds the wait for the daemons to be quiet before each
	// round (awaitQuiet).
	RedisQuiet time.Duration `json:"redis_quiet"`
	// The partial phase (issue 15): sessions loaded into each 9-peer mesh
	// (full replication, then R = 1; 0 skips the phase) and writers per
	// peer. `harness run --partial-sessions N` overrides the size.
	PartialSessions int `json:"partial_sessions"`
	// PartialFullSessions, when positive, loads the full-replication
	// mesh with fewer sessions than the R = 1 mesh (rows then compare per
	// session). `harness run --partial-full-sessions N` sets it.
	PartialFullSessions int `json:"partial_full_sessions,omitempty"`
	PartialWriters      int `json:"partial_writers_per_peer"`
	// Scaling rows: meshes of 3 regions × each of PartialScale peers,
	// full replication and R = 1, PartialScaleSessions each (none: skip).
	PartialScale         []int `json:"partial_scale_per_region"`
	PartialScaleSessions int   `json:"partial_scale_sessions"`
}

func quickSettings() settings {
	return settings{
		Rounds: 3, Warmup: 100 * time.Millisecond,
		ReadDur: 250 * time.Millisecond, ReadSessions: 1000, ReadConc: []int{1, 16},
		WriteDur: 300 * time.Millisecond, WriteConc: []int{1, 16, 50},
		LagRates: []int{1000, 10000, 20000}, LagDur: 2 * time.Second, LagRounds: 1,
		MaxDur: 2 * time.Second, MaxRounds: 1,
		Partitions: []time.Duration{3 * time.Second}, PerSide: 2000,
		KernelParts: []time.Duration{3 * time.Second}, ReconnectRuns: 3,
		MemSizes: []int{20_000},
		HTTPConc: []int{1, 16}, HTTPDur: 300 * time.Millisecond,
		ConvergeWithin: 60 * time.Second, HealWithin: 120 * time.Second,
		RedisClients: []int{1, 16}, RedisPipelines: []int{1, 16},
		RedisRequests: 1000, RedisRequestsPipelined: 4000, RedisRounds: 2, RedisQuiet: time.Second,
		PartialSessions: 600, PartialWriters: 2,
	}
}

func fullSettings() settings {
	return settings{
		Rounds: 7, Warmup: 300 * time.Millisecond,
		ReadDur: 1500 * time.Millisecond, ReadSessions: 10_000, ReadConc: []int{1, 16},
		WriteDur: 1500 * time.Millisecond, WriteConc: []int{1, 16, 50},
		LagRates: []int{1000, 10000, 20000}, LagDur: 5 * time.Second, LagRounds: 3,
		MaxDur: 5 * time.Second, MaxRounds: 3,
		Partitions: []time.Duration{10 * time.Second}, PerSide: 10_000,
		KernelParts: []time.Duration{60 * time.Second, 300 * time.Second}, ReconnectRuns: 20,
		MemSizes: []int{100_000, 1_000_000}, MemIdle: 20 * time.Second,
		HTTPConc: []int{1, 16}, HTTPDur: 1500 * time.Millisecond,
		ConvergeWithin: 60 * time.Second, HealWithin: 120 * time.Second,
		RedisClients: []int{1, 16, 50}, RedisPipelines: []int{1, 16},
		RedisRequests: 10_000, RedisRequestsPipelined: 50_000, RedisRounds: 5, RedisQuiet: 10 * time.Second,
		PartialSessions: 1_000_000, PartialWriters: 4,
		PartialScale: []int{1, 2, 3}, PartialScaleSessions: 20_000,
	}
}

// env is what every phase works with.
type env struct {
	set      settings
	rep      *report
	redis    *redis.Client // no persistence
	redisAOF *redis.Client // appendonly yes, appendfsync everysec
	// redisRepl is a primary with two replicas on this machine, all three
	// appendonly yes, appendfsync everysec: the same work as a write on a
	// peer of a 3-node mesh. Nil when not given.
	redisRepl *redis.Client
	daemonBin string
	work      string
	procs     *procs
}

type phase struct {
	name string
	run  func(context.Context, *env) error
}

var phases = []phase{
	{"read", benchRead},
	{"write", benchWrite},
	{"lag", benchLag},
	{"partition", benchPartition},
	{"http", benchHTTP},
	{"redisfront", benchRedisFront},
	{"memory", benchMemory},
	{"partial", benchPartial},
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: harness run|memchild|freeport [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runAll(os.Args[2:])
	case "memchild":
		err = memChild(os.Args[2:], os.Stdout)
	case "freeport":
		err = freePort()
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

func freePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

func runAll(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smoke-test sizes (under 2 minutes)")
	redisAddr := fs.String("redis", "", "redis-server without persistence, host:port")
	aofAddr := fs.String("redis-aof", "", "redis-server with appendonly yes, appendfsync everysec")
	replAddr := fs.String("redis-repl", "", "redis-server primary with two replicas (appendonly yes, appendfsync everysec on all three); optional")
	daemonBin := fs.String("daemon", "", "the sessionmesh binary (go build ./cmd/sessionmesh)")
	work := fs.String("work", "", "scratch directory for data")
	out := fs.String("out", "bench/results", "where to write <date>.md and .json")
	pidFile := fs.String("pids", "", "file to append the pids of started processes to")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the harness process (embedded nodes included) to this file")
	mutexProfile := fs.String("mutexprofile", "", "write a mutex contention profile of the harness process to this file")
	only := fs.String("only", "", "comma-separated phases to run (default all): "+phaseNames())
	partialSessions := fs.Int("partial-sessions", -1, "sessions per mesh of the partial phase (default: the mode's, 1M full, 600 quick)")
	partialFull := fs.Int("partial-full-sessions", -1, "sessions of the partial phase's full-replication mesh, when fewer than --partial-sessions (default: the mode's)")
	partialScale := fs.String("partial-scale", "", "peers per region of the partial phase's scaling rows, comma-separated (default: the mode's, 1,2,3 full)")
	partialScaleSessions := fs.Int("partial-scale-sessions", -1, "sessions per mesh of the partial phase's scaling rows; 0 skips them (default: the mode's, 20k full)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *redisAddr == "" || *aofAddr == "" || *daemonBin == "" || *work == "" {
		return errors.New("run: --redis, --redis-aof, --daemon and --work are required")
	}
	// A misspelt phase ran nothing and exited 0, writing an empty
	// table over the day's partial results.
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.ContainsFunc(phases, func(x phase) bool { return x.name == p }) {
			return fmt.Errorf("run: --only: unknown phase %q (phases: %s)", p, phaseNames())
		}
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
		defer func() {
			if f, err := os.Create(*mutexProfile); err == nil {
				_ = pprof.Lookup("mutex").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	mode, set := "full", fullSettings()
	if *quick {
		mode, set = "quick", quickSettings()
	}
	if *partialSessions >= 0 {
		set.PartialSessions = *partialSessions
	}
	if *partialFull >= 0 {
		set.PartialFullSessions = *partialFull
	}
	if *partialScaleSessions >= 0 {
		set.PartialScaleSessions = *partialScaleSessions
	}
	if *partialScale != "" {
		set.PartialScale = nil
		for _, f := range strings.Split(*partialScale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("run: --partial-scale %q: want peers per region, positive integers separated by commas", *partialScale)
			}
			set.PartialScale = append(set.PartialScale, n)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e := &env{set: set, rep: newReport(mode), daemonBin: *daemonBin, work: *work, procs: newProcs(*pidFile)}
	defer e.procs.stopAll()
	var err error
	if e.redis, err = newRedis(ctx, *redisAddr, 128); err != nil {
		return err
	}
	defer e.redis.Close()
	if e.redisAOF, err = newRedis(ctx, *aofAddr, 128); err != nil {
		return err
	}
	defer e.redisAOF.Close()
	clients := []*redis.Client{e.redis, e.redisAOF}
	if *replAddr != "" {
		if e.redisRepl, err = newRedis(ctx, *replAddr, 128); err != nil {
			return err
		}
		defer e.redisRepl.Close()
		if err := waitReplicas(ctx, e.redisRepl, 2, 30*time.Second); err != nil {
			return err
		}
		clients = append(clients, e.redisRepl)
	}
	if err := e.describe(ctx); err != nil {
		return err
	}
	for _, c := range clients {
		if err := c.FlushAll(ctx).Err(); err != nil {
			return err
		}
	}
	selected := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			selected[p] = true
		}
	}
	fmt.Printf("sessionmesh vs Redis, %s run: %s\n", mode, e.rep.Machine["summary"])
	fmt.Printf("  %-58s %12s %12s %14s  %s\n", "measure (unit)", "sessionmesh", "Redis", "ratio sm/R", "target")
	failed := false
	for _, p := range phases {
		if len(selected) > 0 && !selected[p.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		fmt.Fprintf(os.Stderr, "== %s\n", p.name)
		err := p.run(ctx, e)
		e.rep.detail("phase_seconds_"+p.name, time.Since(start).Seconds())
		if err != nil {
			failed = true
			e.rep.fail(fmt.Errorf("%s: %w", p.name, err))
			fmt.Fprintf(os.Stderr, "== %s FAILED: %v\n", p.name, err)
		}
	}
	if ctx.Err() != nil {
		failed = true
		e.rep.fail(fmt.Errorf("interrupted: %w", ctx.Err()))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		e.rep.Machine["loadavg_at_end"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	e.addNotes()
	name := time.Now().Format("2006-01-02")
	if *quick {
		name += "-quick"
	}
	if len(selected) > 0 {
		name += "-partial"
	}
	md, err := e.rep.write(*out, name)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s and .json (%.0f s)\n", md, e.rep.Seconds)
	if failed {
		return fmt.Errorf("%d error(s): %s", len(e.rep.Errors), strings.Join(e.rep.Errors, "; "))
	}
	return nil
}

func phaseNames() string {
	var ns []string
	for _, p := range phases {
		ns = append(ns, p.name)
	}
	return strings.Join(ns, ",")
}

// describe records the machine and the settings.
func (e *env) describe(ctx context.Context) error {
	m := e.rep.Machine
	m["cores"] = runtime.NumCPU()
	m["go"] = runtime.Version()
	m["os"] = runtime.GOOS + "/" + runtime.GOARCH
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			m["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(l, "MemTotal:")), " ")
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_start"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	info, err := redisInfo(ctx, e.redis, "server")
	if err != nil {
		return err
	}
	m["redis"] = info["redis_version"]
	m["summary"] = fmt.Sprintf("%d cores, %s, Redis %s", m["cores"], m["go"], m["redis"])
	e.rep.Settings["sizes"] = e.set
	e.rep.Settings["session"] = fmt.Sprintf("%d fields of %d-byte values (keys field0..field9), about 1 KiB", sessionFields, valueBytes)
	e.rep.Settings["sessionmesh nodes"] = "node.DefaultConfig() on loopback libp2p, data on disk, quiet logger; all peers and the harness share the machine's cores"
	e.rep.Settings["work dir"] = e.work
	return nil
}

func (e *env) addNotes() {
	e.rep.note("Durability: Redis appendonly yes + appendfsync everysec acknowledges a write once it is in the OS (it survives kill -9, and a power loss may lose about a second); sessionmesh durability none is the same guarantee (in the page cache when acknowledged, background fsync every second), so those two are the comparable pair. sessionmesh sync fsyncs before acknowledging (group commit); its Redis equivalent would be appendfsync always, not measured here.")
	e.rep.note("All processes share one machine: the 3 sessionmesh peers of a mesh (replicating every write), redis-server and the load generator compete for the same cores, which weighs on sessionmesh's write rows (its two replicas run on the same cores) more than on Redis's (no replicas).")
	e.rep.note("Redis rows have no counterpart for replication lag and partitions: one redis-server has no replicas. They show n/a.")
	e.rep.note("Data checks (a failed one fails the run): every read returns all 10 fields; after each write round every peer holds each writer's last write to each session; peers converge to identical digests; every session written on either side of a partition is intact on every peer; the memory child reads a sample back before and after a restart; Redis holds every key written.")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
