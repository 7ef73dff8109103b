package simulations

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// FaultPeriod is a fault as it happened, for the trace and the report's
// shading. End is -1 for a fault that never heals.
type FaultPeriod struct {
	Start Duration `json:"start"`
	End   Duration `json:"end"`
	Kind  string   `json:"kind"`
	Label string   `json:"label"`
}

// members resolves selectors (node or region names) to node membership.
func (e *engine) members(sel []string) []bool {
	in := make([]bool, len(e.nodes))
	for _, s := range sel {
		for i, n := range e.nodes {
			if n.name == s || e.sc.Regions[n.region].Name == s {
				in[i] = true
			}
		}
	}
	return in
}

func (e *engine) blockPairs(pairs [][2]int, delta int32) {
	for _, p := range pairs {
		e.net.block[p[0]*e.net.n+p[1]] += delta
	}
	e.reconsiderAll()
}

// partitionPairs lists the directed links a partition cuts.
func (e *engine) partitionPairs(groups [][]string) ([][2]int, error) {
	group := make([]int, len(e.nodes))
	for i := range group {
		group[i] = -1
	}
	for g, sel := range groups {
		for i, in := range e.members(sel) {
			if !in {
				continue
			}
			if group[i] >= 0 && group[i] != g {
				return nil, fmt.Errorf("%w %s: node %s is in two partition groups", ErrScenario, e.sc.Name, e.nodes[i].name)
			}
			group[i] = g
		}
	}
	for i := range group {
		if group[i] < 0 {
			group[i] = len(groups)
		}
	}
	var pairs [][2]int
	for a := range e.nodes {
		for b := range e.nodes {
			if group[a] != group[b] {
				pairs = append(pairs, [2]int{a, b})
			}
		}
	}
	return pairs, nil
}

func (e *engine) crossPairs(a, b []bool, both bool) [][2]int {
	var pairs [][2]int
	for i := range e.nodes {
		for j := range e.nodes {
			if i != j && ((a[i] && b[j]) || (both && b[i] && a[j])) {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	return pairs
}

func describeSel(s []string) string { return strings.Join(s, ",") }

// scheduleFaults puts every fault of the schedule on the queue.
func (e *engine) scheduleFaults() error {
	for i, f := range e.sc.Faults {
		start := int64(f.At)
		end := int64(-1)
		if f.For != nil {
			end = start + int64(*f.For)
		}
		p := FaultPeriod{Start: f.At, End: Duration(end)}
		switch {
		case f.Partition != nil:
			pairs, err := e.partitionPairs(f.Partition)
			if err != nil {
				return err
			}
			var gs []string
			for _, g := range f.Partition {
				gs = append(gs, "["+describeSel(g)+"]")
			}
			p.Kind, p.Label = "partition", "partition "+strings.Join(gs, " | ")
			e.window(start, end, p, func() { e.blockPairs(pairs, 1) }, func() { e.blockPairs(pairs, -1) })
		case f.OneWay != nil:
			pairs := e.crossPairs(e.members(f.OneWay.From), e.members(f.OneWay.To), false)
			p.Kind, p.Label = "one_way", fmt.Sprintf("one-way %s -> %s", describeSel(f.OneWay.From), describeSel(f.OneWay.To))
			e.window(start, end, p, func() { e.blockPairs(pairs, 1) }, func() { e.blockPairs(pairs, -1) })
		case f.Flap != nil:
			fl := f.Flap
			pairs := e.crossPairs(e.members(fl.A), e.members(fl.B), true)
			p.Kind, p.Label = "flap", fmt.Sprintf("flap %s <-> %s, down %v every %v", describeSel(fl.A), describeSel(fl.B), fl.Down, fl.Period)
			if fl.Random {
				p.Label = fmt.Sprintf("flap %s <-> %s, down %v of every %v on average (random)", describeSel(fl.A), describeSel(fl.B), fl.Down, fl.Period)
			}
			e.flap(start, end, int64(fl.Period), int64(fl.Down), fl.Random, pairs, p)
		case f.Degrade != nil:
			d := f.Degrade
			df := &degradeFault{a: e.members(d.A), b: e.members(d.B), oneWay: d.OneWay, loss: d.Loss, dup: d.Duplicate, delay: int64(d.Delay), jitter: int64(d.Jitter)}
			arrow := "<->"
			if d.OneWay {
				arrow = "->"
			}
			p.Kind, p.Label = "degrade", fmt.Sprintf("degrade %s %s %s: loss %v, dup %v, +%v±%v", describeSel(d.A), arrow, describeSel(d.B), d.Loss, d.Duplicate, d.Delay, d.Jitter)
			e.window(start, end, p, func() {
				e.net.degrades = append(e.net.degrades, df)
			}, func() {
				e.net.degrades = slices.DeleteFunc(e.net.degrades, func(x *degradeFault) bool { return x == df })
			})
		case f.Crash != nil:
			in := e.members(f.Crash)
			crashed := make([]bool, len(e.nodes))
			p.Kind, p.Label = "crash", "crash "+describeSel(f.Crash)
			power := f.PowerLoss
			if power {
				p.Label = "power loss " + describeSel(f.Crash)
			}
			e.window(start, end, p, func() {
				for i, n := range e.nodes {
					if in[i] && n.up {
						crashed[i] = true
						e.record(TraceEvent{Kind: "crash", Node: n.name})
						e.crash(n)
						if power {
							synced, err := e.powerLoss(n)
							if err != nil {
								e.fail(err)
								return
							}
							if synced >= 0 {
								e.chk.powerLost(n, synced)
							}
						}
					}
				}
			}, func() {
				for i, n := range e.nodes {
					if crashed[i] && !n.up {
						e.record(TraceEvent{Kind: "restart", Node: n.name})
						e.startNode(n)
					}
				}
				e.reconsiderAll()
			})
		case f.Disk != nil:
			in := e.members(f.Disk)
			p.Kind, p.Label = "disk", "disk fault "+describeSel(f.Disk)
			e.window(start, end, p, func() {
				for i, n := range e.nodes {
					if in[i] {
						n.diskFaults++
					}
				}
			}, func() {
				for i, n := range e.nodes {
					if in[i] {
						n.diskFaults--
					}
				}
			})
		case f.Clock != nil:
			cf := f.Clock
			in := e.members(cf.Nodes)
			prev := make([]float64, len(e.nodes))
			p.Kind, p.Label = "clock", "clock "+describeSel(cf.Nodes)
			if cf.Step != 0 {
				p.Label += fmt.Sprintf(" step %v", cf.Step)
			}
			if cf.DriftPPM != nil {
				p.Label += fmt.Sprintf(" drift %vppm", *cf.DriftPPM)
			}
			e.window(start, end, p, func() {
				for i, n := range e.nodes {
					if !in[i] {
						continue
					}
					prev[i] = n.clock.ppm
					if cf.DriftPPM != nil {
						n.clock.setDrift(e.now, *cf.DriftPPM)
					}
					n.clock.step(int64(cf.Step))
					e.fingerprint('K', i, 0, n.clock.off, 0)
					n.clockSetMs = e.localTime(n).UnixMilli()
					if n.up {
						n.core.ClockStepped(time.Duration(cf.Step))
						e.rearm(n)
					}
				}
			}, func() {
				for i, n := range e.nodes {
					if !in[i] {
						continue
					}
					n.clock.step(-int64(cf.Step))
					if cf.DriftPPM != nil {
						n.clock.setDrift(e.now, prev[i])
					}
					e.fingerprint('K', i, 1, n.clock.off, 0)
					n.clockSetMs = e.localTime(n).UnixMilli()
					if n.up {
						n.core.ClockStepped(-time.Duration(cf.Step))
						e.rearm(n)
					}
				}
			})
		default:
			return fmt.Errorf("%w %s: faults[%d]: no fault kind", ErrScenario, e.sc.Name, i)
		}
		e.faults = append(e.faults, p)
	}
	return nil
}

// window runs begin at start and heal at end (when end >= 0), recording
// both in the trace.
func (e *engine) window(start, end int64, p FaultPeriod, begin, heal func()) {
	e.at(start, func() {
		e.record(TraceEvent{Kind: "fault", Fault: p.Kind, Detail: p.Label})
		e.fingerprint('F', 0, 0, int64(len(p.Label)), 0)
		begin()
	})
	if end >= 0 {
		e.at(end, func() {
			e.record(TraceEvent{Kind: "heal", Fault: p.Kind, Detail: p.Label})
			e.fingerprint('H', 0, 0, int64(len(p.Label)), 0)
			heal()
		})
	}
}

// flap takes the links down for down out of every period until end (with
// random, for exponential times of those means).
func (e *engine) flap(start, end, period, down int64, random bool, pairs [][2]int, p FaultPeriod) {
	draw := func(mean int64) int64 {
		if !random {
			return mean
		}
		return max(1, int64(e.faultRNG.ExpFloat64()*float64(mean)))
	}
	var goDown func()
	goDown = func() {
		if e.now >= end {
			return
		}
		e.blockPairs(pairs, 1)
		e.fingerprint('f', 0, 0, 1, 0)
		e.at(min(e.now+draw(down), end), func() {
			e.blockPairs(pairs, -1)
			e.fingerprint('f', 0, 0, 0, 0)
			if next := e.now + draw(period-down); next < end {
				e.at(next, goDown)
			}
		})
	}
	e.window(start, end, p, goDown, func() {})
}
