package simulations

import (
	"testing"
	"time"
)

// A node that crashes for good while cut off takes the writes only it
// holds with it: they are reported as stranded, not waited for. The nodes
// still running were never apart, so the run converged at the heal; the
// convergence figure used to fall back, unable to see every write, to the
// end of the workload (30 s here), and "unreplicated at the end" counted
// the stranded writes once per running node.
func TestStrandedWritesNotWaitedFor(t *testing.T) {
	res := runText(t, `
name: stranded
duration: 90s
quiet: 30s
regions: [{name: us}, {name: eu}]
latency: [{between: [us, eu], delay: 40ms}]
nodes:
  - {region: us, count: 2}
  - {name: eu-1, region: eu}
workload:
  rates: {create: 2, set: 10, read: 5}
faults:
  - {at: 20s, for: 40s, partition: [[us], [eu]]}
  - {at: 40s, crash: [eu-1]}
expect:
  converge_within: 5s
  lost_writes: 0
`, nil)
	f := res.Figures
	if !res.Verdict.Pass || f.Converge < 0 || f.Converge > 1 {
		t.Errorf("converged %.3fs after the heal; verdict:\n%s", f.Converge, res.Summary())
	}
	if f.Stranded == 0 || f.Unreplicated != 0 {
		t.Errorf("stranded %d (want some: eu-1 wrote alone for 20 s), unreplicated at the end %d (want 0)", f.Stranded, f.Unreplicated)
	}
}

// A remove picks among the fields clients wrote, never the node's own
// version entries, which the node refuses: a third of the removes used to
// be refused and go nowhere, without any figure saying so.
func TestRemovesPickClientFields(t *testing.T) {
	res := runText(t, `
name: removes
duration: 20s
quiet: 5s
regions: [{name: a}]
nodes: [{region: a, count: 2}]
workload:
  rates: {create: 2, set: 5, remove: 5, read: 1}
`, nil)
	ops := res.Figures.Ops["remove"]
	refused := 0
	for _, ev := range res.Trace {
		if ev.Op == "remove" && ev.Result == "refused" {
			refused++
			if refused == 1 {
				t.Errorf("a remove was refused: %q", ev.Detail)
			}
		}
	}
	if ops.Acked < 50 || refused > 0 {
		t.Fatalf("removes: %+v, %d refused", ops, refused)
	}
}

// A late joiner's clients start with it: none of its operations is turned
// away as unavailable before it joins.
func TestLateJoinerClientsStartWithIt(t *testing.T) {
	res := runText(t, `
name: late
duration: 20s
quiet: 5s
regions: [{name: a}]
nodes:
  - {region: a, count: 2}
  - {name: late-1, region: a, start: 10s}
workload:
  rates: {create: 2, set: 5, read: 5}
`, nil)
	var first, ops int
	for _, ev := range res.Trace {
		if ev.Kind == "op" && ev.Node == "late-1" {
			ops++
			if ev.Result == "unavailable" || time.Duration(ev.T) < 10*time.Second {
				first++
			}
		}
	}
	if ops < 50 || first > 0 || res.Figures.Unavailable != 0 {
		t.Fatalf("late-1: %d operations, %d before it joined or turned away; %d unavailable in all", ops, first, res.Figures.Unavailable)
	}
}
