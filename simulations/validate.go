package simulations

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// Validation: every part of a scenario checks itself (the validate methods
// below), told the path it sits at, and the first problem found is
// reported with its path: "faults[3].one_way.to: unknown node or region
// "x"".

// Validate checks a scenario, resolved or not.
func (sc *Scenario) Validate() error {
	v := &validation{regions: map[string]bool{}, names: map[string]bool{}, regionOf: map[string]string{}}
	sc.validate(v)
	if v.problem == "" {
		return nil
	}
	name := sc.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Errorf("%w %s: %s", ErrScenario, name, v.problem)
}

// validation collects the first problem and what later parts refer to.
type validation struct {
	problem  string
	regions  map[string]bool   // region names
	names    map[string]bool   // node names
	regionOf map[string]string // node name to region name
}

// fail records a problem at path (the first one wins) and returns false.
func (v *validation) fail(path, format string, args ...any) bool {
	if v.problem == "" {
		msg := fmt.Sprintf(format, args...)
		if path != "" {
			msg = path + ": " + msg
		}
		v.problem = msg
	}
	return false
}

func (v *validation) ok() bool { return v.problem == "" }

func (v *validation) nonNegative(path string, d Duration) bool {
	return d >= 0 || v.fail(path, "must not be negative")
}

func (v *validation) prob(path string, p float64) bool {
	return (p >= 0 && p <= 1) || v.fail(path, "must be a probability in [0, 1], got %v", p)
}

func (v *validation) drift(path string, ppm float64) bool {
	return (math.Abs(ppm) < 1e5 && !math.IsNaN(ppm)) || v.fail(path, "drift_ppm %v out of range", ppm)
}

// sel checks a selector list: node or region names.
func (v *validation) sel(path string, list []string) bool {
	if len(list) == 0 {
		return v.fail(path, "empty selector list")
	}
	for _, s := range list {
		if !v.names[s] && !v.regions[s] {
			return v.fail(path, "unknown node or region %q", s)
		}
	}
	return true
}

// nodesOf lists the nodes a (checked) selector list names, directly or
// by region, sorted.
func (v *validation) nodesOf(list []string) []string {
	var out []string
	for _, s := range list {
		if v.names[s] {
			out = append(out, s)
			continue
		}
		for name, r := range v.regionOf {
			if r == s {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out) // the map's order is not the same twice
	return slices.Compact(out)
}

func (sc *Scenario) validate(v *validation) {
	switch {
	case sc.Name == "":
		v.fail("", "name is missing")
	case sc.Duration <= 0:
		v.fail("duration", "must be positive")
	case sc.Quiet < 0 || sc.Sample < 0:
		v.fail("quiet", "quiet and sample must not be negative")
	case sc.Storage != "" && sc.Storage != StorageMemory && sc.Storage != StorageBadger:
		v.fail("storage", "%q: want memory or badger", sc.Storage)
	case len(sc.Regions) == 0:
		v.fail("regions", "no regions")
	case len(sc.Nodes) == 0:
		v.fail("nodes", "no nodes")
	}
	for i, r := range sc.Regions {
		r.validate(v, fmt.Sprintf("regions[%d]", i))
	}
	sc.validateLatency(v)
	sc.Network.validate(v, "network")
	atStart := 0
	for i, n := range sc.Nodes {
		atStart += n.validate(v, fmt.Sprintf("nodes[%d]", i))
	}
	if len(v.names) > maxNodes {
		v.fail("nodes", "%d nodes, at most %d", len(v.names), maxNodes)
	}
	if v.ok() && atStart == 0 {
		v.fail("nodes", "no node starts at time 0")
	}
	sc.Config.validate(v, "config")
	if sc.Config.replicas() > 0 {
		// What partial replication does not model (yet): a power loss
		// under none would bring back, from the shadow store, sessions
		// dropped after a handoff; the versioned clients read stores
		// directly, not through a holder.
		for i, n := range sc.Nodes {
			if n.Durability == "none" {
				v.fail(fmt.Sprintf("nodes[%d].durability", i), "none is not modelled with config.replicas")
			}
		}
		if sc.Workload.Consistency != nil {
			v.fail("workload.consistency", "not modelled with config.replicas")
		}
	}
	sc.Workload.validate(v, "workload", sc.Duration)
	for i, f := range sc.Faults {
		f.validate(v, fmt.Sprintf("faults[%d]", i), sc.Storage)
	}
	sc.Expect.validate(v, "expect")
}

func (r Region) validate(v *validation, path string) {
	switch {
	case r.Name == "":
		v.fail(path, "name is missing")
	case v.regions[r.Name]:
		v.fail(path, "region %q defined twice", r.Name)
	case r.Delay != nil && *r.Delay < 0:
		v.fail(path+".delay", "must not be negative")
	case r.Jitter != nil && *r.Jitter < 0:
		v.fail(path+".jitter", "must not be negative")
	}
	v.regions[r.Name] = true
}

func (sc *Scenario) validateLatency(v *validation) {
	pairs := map[[2]string]bool{}
	for i, l := range sc.Latency {
		path := fmt.Sprintf("latency[%d]", i)
		if len(l.Between) != 2 {
			v.fail(path+".between", "must name two regions, got %d", len(l.Between))
			return
		}
		for _, r := range l.Between {
			if !v.regions[r] {
				v.fail(path+".between", "unknown region %q", r)
			}
		}
		if l.Between[0] == l.Between[1] {
			v.fail(path+".between", "names region %q twice (set delay on the region for links inside it)", l.Between[0])
		}
		v.nonNegative(path+".delay", l.Delay)
		v.nonNegative(path+".jitter", l.Jitter)
		k := regionPair(l.Between[0], l.Between[1])
		if pairs[k] {
			v.fail(path, "regions %s and %s given twice", k[0], k[1])
		}
		pairs[k] = true
	}
	for i, a := range sc.Regions {
		for _, b := range sc.Regions[i+1:] {
			if !pairs[regionPair(a.Name, b.Name)] {
				v.fail("latency", "no entry between regions %s and %s", a.Name, b.Name)
			}
		}
	}
}

func (n Network) validate(v *validation, path string) {
	if v.prob(path+".loss", n.Loss) && n.Loss >= 1 {
		v.fail(path+".loss", "a loss of 1 loses everything")
	}
	v.prob(path+".duplicate", n.Duplicate)
	n.Transport.validate(v, path+".transport")
}

func (t TransportSpec) validate(v *validation, path string) {
	for _, p := range []struct {
		name string
		v    *Duration
		min  time.Duration
	}{{"failure_timeout", t.FailureTimeout, 200 * time.Millisecond}, {"redial_interval", t.RedialInterval, 100 * time.Millisecond},
		{"dial_timeout", t.DialTimeout, 100 * time.Millisecond}, {"redial_max", t.RedialMax, 100 * time.Millisecond}} {
		if p.v != nil && p.v.D() < p.min {
			v.fail(path+"."+p.name, "must be at least %v (as transport requires)", p.min)
		}
	}
	if t.RedialJitter != nil && !(*t.RedialJitter >= 0 && *t.RedialJitter < 1) {
		v.fail(path+".redial_jitter", "must be in [0, 1)")
	}
	if t.RedialBackoff != nil && !(*t.RedialBackoff >= 1 && *t.RedialBackoff <= 10) {
		v.fail(path+".redial_backoff", "must be in [1, 10]")
	}
	if t.ReadyMinPeers < 0 {
		v.fail(path+".ready_min_peers", "must not be negative")
	}
}

// validate checks a node (group) and registers its names; it returns how
// many of them start at time 0.
func (n NodeSpec) validate(v *validation, path string) int {
	switch {
	case !v.regions[n.Region]:
		v.fail(path+".region", "unknown region %q", n.Region)
		return 0
	case n.Count < 0:
		v.fail(path+".count", "must not be negative")
		return 0
	case n.Count == 0 && n.Name == "":
		v.fail(path, "a node needs a name (or a count for a group)")
		return 0
	case n.Start < 0:
		v.fail(path+".start", "must not be negative")
		return 0
	case !v.drift(path+".clock.drift_ppm", n.Clock.DriftPPM):
		return 0
	}
	if n.Durability != "" {
		if _, err := persist.ParseDurability(n.Durability); err != nil {
			v.fail(path+".durability", "%q: want sync, group or none", n.Durability)
		}
	}
	list := []string{n.Name}
	if n.Count > 0 {
		list = list[:0]
		prefix := n.Name
		if prefix == "" {
			prefix = n.Region
		}
		for j := 1; j <= n.Count; j++ {
			list = append(list, fmt.Sprintf("%s-%d", prefix, j))
		}
	}
	atStart := 0
	for _, name := range list {
		switch {
		case v.names[name]:
			v.fail(path, "node %q defined twice", name)
		case v.regions[name]:
			v.fail(path, "node %q has the name of a region", name)
		}
		v.names[name] = true
		v.regionOf[name] = n.Region
		if n.Start == 0 {
			atStart++
		}
	}
	return atStart
}

func (c Config) validate(v *validation, path string) {
	for _, p := range []struct {
		name string
		v    *Duration
	}{{"idle_timeout", c.IdleTimeout}, {"absolute_lifetime", c.AbsoluteLifetime}, {"max_drift", c.MaxDrift}, {"flush_delay", c.FlushDelay},
		{"sync_interval", c.SyncInterval}, {"sync_timeout", c.SyncTimeout}, {"gc_interval", c.GCInterval},
		{"holder_grace", c.HolderGrace}, {"handoff_interval", c.HandoffInterval}} {
		if p.v != nil {
			v.nonNegative(path+"."+p.name, *p.v)
		}
	}
	if c.Replicas != nil && *c.Replicas < 0 {
		v.fail(path+".replicas", "must be 0 (every node holds every session) or positive, got %d", *c.Replicas)
	}
	if c.replicas() == 0 && (c.HolderGrace != nil || c.HandoffInterval != nil) {
		v.fail(path, "holder_grace and handoff_interval need replicas")
	}
}

func (r Rates) validate(v *validation, path string) {
	for _, p := range []struct {
		name string
		v    float64
	}{{"create", r.Create}, {"set", r.Set}, {"remove", r.Remove}, {"touch", r.Touch}, {"renew", r.Renew}, {"destroy", r.Destroy}, {"read", r.Read}} {
		if p.v < 0 || math.IsNaN(p.v) || math.IsInf(p.v, 0) {
			v.fail(path+"."+p.name, "must be a non-negative number")
		}
	}
}

func (w Workload) validate(v *validation, path string, duration Duration) {
	w.Rates.validate(v, path+".rates")
	if w.Skew != 0 && !(w.Skew > 1) {
		v.fail(path+".skew", "must be 0 (uniform) or above 1 (Zipf exponent), got %v", w.Skew)
	}
	v.prob(path+".roam", w.Roam)
	if w.Keys < 0 || w.Keys > 200 {
		v.fail(path+".keys", "must be in [1, 200]")
	}
	if w.ValueBytes < 0 || w.ValueBytes > 1<<16 {
		v.fail(path+".value_bytes", "must be in [1, 65536]")
	}
	v.nonNegative(path+".linger", w.Linger)
	if w.IdleTimeout != nil && *w.IdleTimeout <= 0 {
		v.fail(path+".idle_timeout", "must be positive")
	}
	if w.Lifetime != nil && *w.Lifetime <= 0 {
		v.fail(path+".lifetime", "must be positive")
	}
	if w.Nodes != nil {
		v.sel(path+".nodes", w.Nodes)
	}
	phases := map[string]bool{}
	for i, p := range w.Phases {
		pp := fmt.Sprintf("%s.phases[%d]", path, i)
		switch {
		case p.Name == "":
			v.fail(pp+".name", "missing")
		case phases[p.Name]:
			v.fail(pp+".name", "phase %q defined twice", p.Name)
		case p.At < 0:
			v.fail(pp+".at", "must not be negative")
		case p.For <= 0:
			v.fail(pp+".for", "must be positive")
		case p.At+p.For > duration:
			v.fail(pp, "ends at %v, after the workload (duration %v)", p.At+p.For, duration)
		}
		phases[p.Name] = true
		if p.Nodes != nil {
			v.sel(pp+".nodes", p.Nodes)
		}
		p.Rates.validate(v, pp+".rates")
	}
}

func (f Fault) validate(v *validation, path, storage string) {
	v.nonNegative(path+".at", f.At)
	if f.For != nil && *f.For <= 0 {
		v.fail(path+".for", "must be positive")
	}
	kinds := 0
	for _, set := range []bool{f.Partition != nil, f.OneWay != nil, f.Flap != nil, f.Degrade != nil, f.Crash != nil, f.Clock != nil, f.Disk != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		v.fail(path, "give exactly one of partition, one_way, flap, degrade, crash, clock, disk (got %d)", kinds)
		return
	}
	if f.PowerLoss && f.Crash == nil {
		v.fail(path+".power_loss", "only a crash can come with a power loss")
	}
	if f.PowerLoss && storage == StorageBadger {
		v.fail(path+".power_loss", "not modelled on storage badger (a process cannot lose its page cache)")
	}
	needFor := func(kind string) {
		if f.For == nil {
			v.fail(path, "a %s needs `for` (how long until it heals)", kind)
		}
	}
	switch {
	case f.Partition != nil:
		needFor("partition")
		if len(f.Partition) == 0 {
			v.fail(path+".partition", "no groups")
		}
		group := map[string]int{} // node name to the group that has it
		for j, g := range f.Partition {
			gp := fmt.Sprintf("%s.partition[%d]", path, j)
			if !v.sel(gp, g) {
				break
			}
			for _, name := range v.nodesOf(g) {
				if k, ok := group[name]; ok && k != j {
					v.fail(gp, "node %q is also in partition[%d]: the groups must not overlap", name, k)
					break
				}
				group[name] = j
			}
		}
	case f.OneWay != nil:
		needFor("one_way partition")
		v.sel(path+".one_way.from", f.OneWay.From)
		v.sel(path+".one_way.to", f.OneWay.To)
	case f.Flap != nil:
		needFor("flap")
		v.sel(path+".flap.a", f.Flap.A)
		v.sel(path+".flap.b", f.Flap.B)
		if f.Flap.Period <= 0 || f.Flap.Down <= 0 || f.Flap.Down >= f.Flap.Period {
			v.fail(path+".flap", "needs 0 < down < period")
		}
	case f.Degrade != nil:
		needFor("degrade")
		d := f.Degrade
		v.sel(path+".degrade.a", d.A)
		v.sel(path+".degrade.b", d.B)
		v.prob(path+".degrade.loss", d.Loss)
		v.prob(path+".degrade.duplicate", d.Duplicate)
		v.nonNegative(path+".degrade.delay", d.Delay)
		v.nonNegative(path+".degrade.jitter", d.Jitter)
	case f.Crash != nil:
		v.sel(path+".crash", f.Crash)
	case f.Disk != nil:
		needFor("disk fault")
		v.sel(path+".disk", f.Disk)
	case f.Clock != nil:
		v.sel(path+".clock.nodes", f.Clock.Nodes)
		if f.Clock.DriftPPM != nil {
			v.drift(path+".clock.drift_ppm", *f.Clock.DriftPPM)
		}
		if f.Clock.Step == 0 && f.Clock.DriftPPM == nil {
			v.fail(path+".clock", "needs a step or a drift_ppm")
		}
	}
}

func (e Expect) validate(v *validation, path string) {
	for _, p := range []struct {
		name string
		v    *Duration
	}{{"converge_within", e.ConvergeWithin}, {"reconnect_within", e.ReconnectWithin}} {
		if p.v != nil {
			v.nonNegative(path+"."+p.name, *p.v)
		}
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"lost_writes", e.LostWrites}, {"resurrections", e.Resurrections}, {"expired_served", e.ExpiredServed}, {"read_your_writes_violations", e.ReadYourWritesViolations},
		{"merge_determinism", e.MergeDeterminism}, {"deferred_stranded", e.DeferredStranded},
		{"under_replicated", e.UnderReplicated}, {"unsafe_drops", e.UnsafeDrops}, {"stale_remote_reads", e.StaleRemoteReads}} {
		if p.v != nil && *p.v < 0 {
			v.fail(path+"."+p.name, "must not be negative")
		}
	}
}
