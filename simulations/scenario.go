package simulations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Scenario describes one simulated run: the mesh, its network, the node
// configuration, the workload, the faults and what the run must show. Load
// or Parse read one from YAML (unknown fields are errors); Resolve fills the
// defaults, and the resolved form is what a run records, so that a replay
// does not depend on defaults that may change.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
	// Seed is the default seed of `sim run` when --seed is not given.
	Seed uint64 `yaml:"seed,omitempty"`
	// Duration is how long the workload runs, from time 0.
	Duration Duration `yaml:"duration"`
	// Quiet is how long the run goes on, without writes, after the
	// workload has stopped and the last fault has healed; the final
	// checks are made at its end.
	Quiet Duration `yaml:"quiet"`
	// Sample is the period of the divergence samples (metrics.csv and the
	// report's plots). Default: about 400 samples over the run.
	Sample Duration `yaml:"sample,omitempty"`

	Regions []Region `yaml:"regions"`
	// Latency gives the one-way delay between every two regions.
	Latency []Latency  `yaml:"latency,omitempty"`
	Network Network    `yaml:"network,omitempty"`
	Nodes   []NodeSpec `yaml:"nodes"`
	Config  Config     `yaml:"config,omitempty"`

	// Storage is where the nodes' stores live: "memory" (the default) or
	// "badger", on disk in a temporary directory removed after the run
	// (slower, and fuller: Badger's own code runs).
	Storage string `yaml:"storage,omitempty"`

	Workload Workload `yaml:"workload"`
	Faults   []Fault  `yaml:"faults,omitempty"`
	Expect   Expect   `yaml:"expect,omitempty"`
}

// Region is a group of nodes close to each other.
type Region struct {
	Name string `yaml:"name"`
	// Delay and Jitter are the one-way delay between two nodes of the
	// region. Default 1ms and 200µs.
	Delay  *Duration `yaml:"delay,omitempty"`
	Jitter *Duration `yaml:"jitter,omitempty"`
}

// Latency is the one-way delay between two regions, both ways: each message
// takes Delay plus a uniform draw in [0, Jitter), so jitter reorders.
type Latency struct {
	Between []string `yaml:"between,flow"`
	Delay   Duration `yaml:"delay"`
	Jitter  Duration `yaml:"jitter,omitempty"`
}

// Network holds the faults every link has all the time.
type Network struct {
	// Loss and Duplicate are per-message probabilities.
	Loss      float64 `yaml:"loss,omitempty"`
	Duplicate float64 `yaml:"duplicate,omitempty"`
	// Transport is the connection lifecycle (failure detection, redial,
	// readiness); unset fields take package transport's defaults.
	Transport TransportSpec `yaml:"transport,omitempty"`
}

// TransportSpec models the transport's connection lifecycle (see
// lifecycle.go and transport.Config, whose fields these mirror).
type TransportSpec struct {
	// FailureTimeout: a connected peer silent this long is declared lost
	// (PeerDown); pings go every FailureTimeout/4, so a cut is noticed
	// between 3/4 of it and all of it after it began. A flap shorter than
	// that loses messages but keeps the connection. Default
	// transport.DefaultFailureTimeout.
	FailureTimeout *Duration `yaml:"failure_timeout,omitempty"`
	// RedialInterval is the pause between two dials of an absent peer,
	// jittered by ±RedialJitter (a fraction), grown by RedialBackoff (a
	// factor, 1 = not) after each failed dial up to RedialMax. Defaults
	// transport.DefaultRedialInterval, 0.2, 1 and 30s; a backoff of 2
	// models the transport before failure detection (issue 10), which
	// took up to 30 s to reconnect after a long cut.
	RedialInterval *Duration `yaml:"redial_interval,omitempty"`
	RedialJitter   *float64  `yaml:"redial_jitter,omitempty"`
	RedialBackoff  *float64  `yaml:"redial_backoff,omitempty"`
	RedialMax      *Duration `yaml:"redial_max,omitempty"`
	// DialTimeout bounds one dial. Default transport.DefaultDialTimeout.
	DialTimeout *Duration `yaml:"dial_timeout,omitempty"`
	// ReadyMinPeers, when positive, takes a node with fewer connected
	// peers out of service (its clients' operations are unavailable), as
	// a readiness check that requires peers would: an isolated region
	// then stops serving. Default 0: readiness does not depend on peers.
	ReadyMinPeers int `yaml:"ready_min_peers,omitempty"`
}

// NodeSpec is a node, or with Count a group of them named Name-1..Name-N
// (Name defaults to the region's name).
type NodeSpec struct {
	Name   string `yaml:"name,omitempty"`
	Region string `yaml:"region"`
	Count  int    `yaml:"count,omitempty"`
	// Start, when positive, makes a late joiner: the node starts then with
	// an empty store, and its clients start then too.
	Start Duration  `yaml:"start,omitempty"`
	Clock ClockSpec `yaml:"clock,omitempty,flow"`
	// Durability is persist's durability mode: sync (the default), group
	// or none. It decides what a power loss loses (durability.go).
	Durability string `yaml:"durability,omitempty"`
}

// Storage backends.
const (
	StorageMemory = "memory"
	StorageBadger = "badger"
)

// ClockSpec is a node's clock: local time = true time + Offset, drifting by
// DriftPPM parts per million of elapsed time.
type ClockSpec struct {
	Offset   Duration `yaml:"offset,omitempty"`
	DriftPPM float64  `yaml:"drift_ppm,omitempty"`
}

// Config overrides node.DefaultConfig for every node. Unset fields keep
// the default; the resolved scenario lists them all.
type Config struct {
	IdleTimeout        *Duration `yaml:"idle_timeout,omitempty"`
	AbsoluteLifetime   *Duration `yaml:"absolute_lifetime,omitempty"`
	MaxDrift           *Duration `yaml:"max_drift,omitempty"`
	FlushDelay         *Duration `yaml:"flush_delay,omitempty"`
	FlushBytes         *int      `yaml:"flush_bytes,omitempty"`
	SyncInterval       *Duration `yaml:"sync_interval,omitempty"`
	SyncTimeout        *Duration `yaml:"sync_timeout,omitempty"`
	MaxConcurrentSyncs *int      `yaml:"max_concurrent_syncs,omitempty"`
	SyncChunkBytes     *int      `yaml:"sync_chunk_bytes,omitempty"`
	GCInterval         *Duration `yaml:"gc_interval,omitempty"`
	GCBatch            *int      `yaml:"gc_batch,omitempty"`
	MaxDeferred        *int      `yaml:"max_deferred,omitempty"`
	// TouchFraction is node.Config.TouchFraction: touches that move last
	// access by less than this fraction of the idle timeout stay on their
	// node (lazy). 0 writes and sends every touch.
	TouchFraction *float64 `yaml:"touch_fraction,omitempty"`
	// Replicas turns partial replication on (node.Config.Replicas,
	// docs/partial-replication.md): every session is held by this many
	// nodes of each region, placed by the nodes themselves from the
	// hellos they exchange; the others hand their writes off and read
	// from a holder. 0 (the default): every node holds every session.
	// HolderGrace and HandoffInterval are node.Config's (resolved only
	// with Replicas).
	Replicas        *int      `yaml:"replicas,omitempty"`
	HolderGrace     *Duration `yaml:"holder_grace,omitempty"`
	HandoffInterval *Duration `yaml:"handoff_interval,omitempty"`
}

// replicas is the scenario's partial replication setting (0: full).
func (c Config) replicas() int {
	if c.Replicas == nil {
		return 0
	}
	return *c.Replicas
}

// Workload is the seeded client traffic. Rates are operations per second
// on each node that takes traffic; operations other than create pick a
// session among the live ones the clients know, by a Zipf law over their
// age (the newest is the hottest), from those homed on the node or, with
// probability Roam, from anywhere.
type Workload struct {
	Rates Rates `yaml:"rates,flow"`
	// Skew is the Zipf exponent (> 1), or 0 for a uniform choice.
	Skew float64 `yaml:"skew,omitempty"`
	// Roam is the probability that an operation goes to a session homed on
	// another node (a client whose requests change region).
	Roam float64 `yaml:"roam,omitempty"`
	// Keys is the number of distinct field keys per session (default 8);
	// ValueBytes the size of written values (default 32).
	Keys       int `yaml:"keys,omitempty"`
	ValueBytes int `yaml:"value_bytes,omitempty"`
	// IdleTimeout and Lifetime of created sessions; default the node
	// configuration's.
	IdleTimeout *Duration `yaml:"idle_timeout,omitempty"`
	Lifetime    *Duration `yaml:"lifetime,omitempty"`
	// Linger is how long clients keep using a session after destroying or
	// renewing it (requests in flight, a second tab that missed the
	// logout): writes after a destroy, on nodes that have not heard of it
	// yet, which the destroy must still beat. Default 0.
	Linger Duration `yaml:"linger,omitempty"`
	// Nodes that take traffic (names or regions); default all.
	Nodes []string `yaml:"nodes,omitempty,flow"`
	// Phases give some nodes other rates for a while: a side of a split
	// that only destroys, a region that stops taking traffic, a burst.
	// Where phases overlap on a node the last listed wins; outside every
	// phase the nodes above run Rates.
	Phases []Phase `yaml:"phases,omitempty"`
	// Consistency adds clients that carry session versions and own their
	// sessions, and a revocation of their owners (consistency.go).
	Consistency *ConsistencyWorkload `yaml:"consistency,omitempty"`
}

// Phase is a named period with its own rates (and so its own mix of
// operations) on some nodes.
type Phase struct {
	Name string   `yaml:"name"`
	At   Duration `yaml:"at"`
	For  Duration `yaml:"for"`
	// Nodes (names or regions) it applies to; default the workload's.
	Nodes []string `yaml:"nodes,omitempty,flow"`
	Rates Rates    `yaml:"rates,flow"`
}

// Rates are operations per second per node.
type Rates struct {
	Create  float64 `yaml:"create,omitempty"`
	Set     float64 `yaml:"set,omitempty"`
	Remove  float64 `yaml:"remove,omitempty"`
	Touch   float64 `yaml:"touch,omitempty"`
	Renew   float64 `yaml:"renew,omitempty"`
	Destroy float64 `yaml:"destroy,omitempty"`
	Read    float64 `yaml:"read,omitempty"`
}

// Fault is one entry of the fault schedule: exactly one of its kinds,
// starting At and lasting For. Selectors name nodes or regions.
type Fault struct {
	At  Duration  `yaml:"at"`
	For *Duration `yaml:"for,omitempty"`

	// Partition splits the mesh into groups that cannot reach each other;
	// nodes in no group form one more group.
	Partition [][]string `yaml:"partition,omitempty,flow"`
	// OneWay drops every message from From to To, not the other way.
	OneWay *OneWay `yaml:"one_way,omitempty"`
	// Flap takes the links between A and B down for Down out of every
	// Period.
	Flap *Flap `yaml:"flap,omitempty"`
	// Degrade adds loss, duplication and delay to the links between A and B.
	Degrade *Degrade `yaml:"degrade,omitempty"`
	// Crash stops the nodes' processes; they restart after For, or never
	// without it. The stores keep what the process acknowledged, unless
	// PowerLoss: then a node under durability none loses the writes its
	// background fsync had not synced. Not modelled on storage badger (a
	// process cannot make the kernel drop its page cache): refused there.
	Crash     []string `yaml:"crash,omitempty,flow"`
	PowerLoss bool     `yaml:"power_loss,omitempty"`
	// Disk fails every write of the nodes (a failed write or fsync) for
	// For: they must refuse to acknowledge, never acknowledge and lose.
	Disk []string `yaml:"disk,omitempty,flow"`
	// Clock steps or changes the drift of the nodes' clocks, undone after
	// For when given.
	Clock *ClockFault `yaml:"clock,omitempty,flow"`
}

// OneWay is a one-way partition.
type OneWay struct {
	From []string `yaml:"from,flow"`
	To   []string `yaml:"to,flow"`
}

// Flap is a flapping link: down for Down out of every Period, or with
// Random, down and up for exponentially distributed times whose means are
// Down and Period-Down (seeded, so a run still replays).
type Flap struct {
	A      []string `yaml:"a,flow"`
	B      []string `yaml:"b,flow"`
	Period Duration `yaml:"period"`
	Down   Duration `yaml:"down"`
	Random bool     `yaml:"random,omitempty"`
}

// Degrade worsens the links between A and B both ways, or with OneWay
// only from A to B (loss or latency on one direction of a path).
type Degrade struct {
	A         []string `yaml:"a,flow"`
	B         []string `yaml:"b,flow"`
	OneWay    bool     `yaml:"one_way,omitempty"`
	Loss      float64  `yaml:"loss,omitempty"`
	Duplicate float64  `yaml:"duplicate,omitempty"`
	Delay     Duration `yaml:"delay,omitempty"`
	Jitter    Duration `yaml:"jitter,omitempty"`
}

// ClockFault changes clocks.
type ClockFault struct {
	Nodes    []string `yaml:"nodes,flow"`
	Step     Duration `yaml:"step,omitempty"`
	DriftPPM *float64 `yaml:"drift_ppm,omitempty"`
}

// Expect is what the run must show; unset expectations are measured but
// not judged. Counts are maxima.
type Expect struct {
	// ConvergeWithin bounds the time from the last heal (the end of the
	// last fault, or the start of the last late joiner; without either,
	// the end of the workload) until the mesh has repaired what diverged:
	// when the workload has stopped by then, until every live node holds
	// the same digest for good; when traffic goes on past the heal, until
	// every live node holds every write acknowledged before the heal (and
	// the digests must agree at the end).
	ConvergeWithin *Duration `yaml:"converge_within,omitempty"`
	// ReconnectWithin bounds the time from the last heal until every two
	// running nodes are connected again (the transport's redial and
	// failure detection at work).
	ReconnectWithin          *Duration `yaml:"reconnect_within,omitempty"`
	LostWrites               *int      `yaml:"lost_writes,omitempty"`
	Resurrections            *int      `yaml:"resurrections,omitempty"`
	ExpiredServed            *int      `yaml:"expired_served,omitempty"`
	ReadYourWritesViolations *int      `yaml:"read_your_writes_violations,omitempty"`
	// MergeDeterminism: sessions whose acknowledged deltas merge to
	// different states in different orders (or with equal timestamps), or
	// whose replicas differ from their merge once the mesh converged. The
	// check keeps every delta of the run, so it runs only when expected.
	MergeDeterminism *int `yaml:"merge_determinism,omitempty"`
	// VersionReadViolations: answers to clients carrying a version that
	// showed them less than they had written or seen; RevokedServed:
	// sessions of a revoked owner served by a node the revocation had
	// reached (Workload.Consistency).
	VersionReadViolations *int `yaml:"version_read_violations,omitempty"`
	RevokedServed         *int `yaml:"revoked_served,omitempty"`
	// DeferredStranded: deferred deltas applied more than 2 s after the
	// drift bound admitted them (or never).
	DeferredStranded *int `yaml:"deferred_stranded,omitempty"`
	// UnderReplicated (partial replication): (session, region) pairs
	// where, at the end, fewer than min(R, running nodes of the region)
	// stores hold every acknowledged write of a live session.
	// UnsafeDrops: copies a node dropped after a handoff while its
	// region held fewer than R other copies covering them.
	UnderReplicated *int `yaml:"under_replicated,omitempty"`
	UnsafeDrops     *int `yaml:"unsafe_drops,omitempty"`
	// StaleRemoteReads (partial replication): probe reads made 2 s
	// before the end, one per session on a node that does not hold it,
	// that a holder answered and that lack an acknowledged write of a
	// live session (or show a destroyed one).
	StaleRemoteReads *int `yaml:"stale_remote_reads,omitempty"`
}

// Errors of scenario handling.
var (
	// ErrScenario reports a scenario that does not parse or is not valid.
	ErrScenario = errors.New("simulations: bad scenario")
)

// maxNodes bounds the mesh (seen-by sets are bitsets).
const maxNodes = 256

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simulations: %w", err)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Parse decodes a scenario strictly (unknown fields are errors) and
// validates it. The result is not resolved.
func Parse(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty file", ErrScenario)
		}
		return nil, fmt.Errorf("%w: %s", ErrScenario, withPaths(strings.TrimPrefix(err.Error(), "yaml: "), data))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document", ErrScenario)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// yaml writes the scenario as YAML.
func (sc *Scenario) yaml() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(sc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Resolve returns a copy with every default filled in and node groups
// expanded. It validates first.
func (sc *Scenario) Resolve() (*Scenario, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	data, err := sc.yaml()
	if err != nil {
		return nil, fmt.Errorf("simulations: copy scenario: %w", err)
	}
	var r Scenario
	if err := yaml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("simulations: copy scenario: %w", err)
	}
	r.Nodes = nil
	for _, n := range sc.Nodes {
		if n.Count == 0 {
			r.Nodes = append(r.Nodes, n)
			continue
		}
		prefix := n.Name
		if prefix == "" {
			prefix = n.Region
		}
		for i := 1; i <= n.Count; i++ {
			m := n
			m.Count = 0
			m.Name = fmt.Sprintf("%s-%d", prefix, i)
			r.Nodes = append(r.Nodes, m)
		}
	}
	if r.Storage == "" {
		r.Storage = StorageMemory
	}
	for i := range r.Nodes {
		if r.Nodes[i].Durability == "" {
			r.Nodes[i].Durability = persist.DurabilitySync.String()
		}
	}
	for i := range r.Regions {
		rg := &r.Regions[i]
		if rg.Delay == nil {
			rg.Delay = dur(time.Millisecond)
		}
		if rg.Jitter == nil {
			rg.Jitter = dur(200 * time.Microsecond)
		}
	}
	tr := &r.Network.Transport
	if tr.FailureTimeout == nil {
		tr.FailureTimeout = dur(defaultFailureTimeout)
	}
	if tr.RedialInterval == nil {
		tr.RedialInterval = dur(defaultRedialInterval)
	}
	if tr.DialTimeout == nil {
		tr.DialTimeout = dur(defaultDialTimeout)
	}
	if tr.RedialMax == nil {
		tr.RedialMax = dur(30 * time.Second)
	}
	if tr.RedialJitter == nil {
		v := defaultRedialJitter
		tr.RedialJitter = &v
	}
	if tr.RedialBackoff == nil {
		v := 1.0
		tr.RedialBackoff = &v
	}
	def := node.DefaultConfig()
	c := &r.Config
	fillD := func(p **Duration, v time.Duration) {
		if *p == nil {
			*p = dur(v)
		}
	}
	fillI := func(p **int, v int) {
		if *p == nil {
			*p = &v
		}
	}
	fillD(&c.IdleTimeout, def.IdleTimeout)
	fillD(&c.AbsoluteLifetime, def.AbsoluteLifetime)
	fillD(&c.MaxDrift, def.MaxDrift)
	fillD(&c.FlushDelay, def.FlushDelay)
	fillI(&c.FlushBytes, def.FlushBytes)
	fillD(&c.SyncInterval, def.SyncInterval)
	fillD(&c.SyncTimeout, def.SyncTimeout)
	fillI(&c.MaxConcurrentSyncs, def.MaxConcurrentSyncs)
	fillI(&c.SyncChunkBytes, def.SyncChunkBytes)
	fillD(&c.GCInterval, def.GCInterval)
	fillI(&c.GCBatch, def.GCBatch)
	fillI(&c.MaxDeferred, def.MaxDeferred)
	if c.TouchFraction == nil {
		v := def.TouchFraction
		c.TouchFraction = &v
	}
	if c.replicas() > 0 {
		fillD(&c.HolderGrace, def.HolderGrace)
		fillD(&c.HandoffInterval, def.HandoffInterval)
	}
	w := &r.Workload
	if w.Keys == 0 {
		w.Keys = 8
	}
	if w.ValueBytes == 0 {
		w.ValueBytes = 32
	}
	fillD(&w.IdleTimeout, c.IdleTimeout.D())
	fillD(&w.Lifetime, c.AbsoluteLifetime.D())
	if r.Sample == 0 {
		total := r.settle() + r.Quiet.D()
		r.Sample = Duration(max(100*time.Millisecond, (total / 400).Truncate(100*time.Millisecond)))
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("resolved: %w", err)
	}
	if _, err := r.nodeConfig(); err != nil {
		return nil, err
	}
	return &r, nil
}

// nodeConfig builds the node configuration of a resolved scenario.
func (sc *Scenario) nodeConfig() (node.Config, error) {
	cfg := node.DefaultConfig()
	c := sc.Config
	cfg.IdleTimeout = c.IdleTimeout.D()
	cfg.AbsoluteLifetime = c.AbsoluteLifetime.D()
	cfg.MaxDrift = c.MaxDrift.D()
	cfg.FlushDelay = c.FlushDelay.D()
	cfg.FlushBytes = *c.FlushBytes
	cfg.SyncInterval = c.SyncInterval.D()
	cfg.SyncTimeout = c.SyncTimeout.D()
	cfg.MaxConcurrentSyncs = *c.MaxConcurrentSyncs
	cfg.SyncChunkBytes = *c.SyncChunkBytes
	cfg.GCInterval = c.GCInterval.D()
	cfg.GCBatch = *c.GCBatch
	cfg.MaxDeferred = *c.MaxDeferred
	cfg.TouchFraction = *c.TouchFraction
	if cfg.Replicas = c.replicas(); cfg.Replicas > 0 {
		cfg.HolderGrace = c.HolderGrace.D()
		cfg.HandoffInterval = c.HandoffInterval.D()
	}
	cfg.Logger = discardLogger
	// The simulator is the network: no transport to validate.
	cfg.Dial = func(context.Context, node.Inbound) (node.Network, error) {
		return nil, errors.New("simulations: no network")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: config: %w", ErrScenario, err)
	}
	return cfg, nil
}

// settle is when the workload has stopped, every fault has healed and every
// late joiner has started.
func (sc *Scenario) settle() time.Duration {
	t := sc.Duration.D()
	for _, f := range sc.Faults {
		end := f.At.D()
		if f.For != nil {
			end += f.For.D()
		}
		t = max(t, end)
	}
	for _, n := range sc.Nodes {
		t = max(t, n.Start.D())
	}
	return t
}

// lastHeal is when the last fault healed or the last late joiner started,
// and false when the scenario has neither (then convergence is measured
// from the end of the workload).
func (sc *Scenario) lastHeal() (time.Duration, bool) {
	var t time.Duration
	found := false
	for _, f := range sc.Faults {
		if f.For != nil {
			t, found = max(t, f.At.D()+f.For.D()), true
		}
	}
	for _, n := range sc.Nodes {
		if n.Start > 0 {
			t, found = max(t, n.Start.D()), true
		}
	}
	return t, found
}

func regionPair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}
