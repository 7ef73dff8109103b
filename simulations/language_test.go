package simulations

import (
	"strings"
	"testing"
)

// Phases give each side of a split its own operations: here the west side
// only destroys while the east side only writes, then both stop.
func TestPhasesPerSide(t *testing.T) {
	text := `
name: phases
duration: 20s
quiet: 10s
regions: [{name: east}, {name: west}]
latency: [{between: [east, west], delay: 30ms}]
nodes: [{region: east, count: 2}, {region: west, count: 2}]
workload:
  rates: {create: 4, set: 4, read: 2}
  roam: 0.5
  phases:
    - {name: east-writes, at: 5s, for: 10s, nodes: [east], rates: {set: 10, touch: 2}}
    - {name: west-destroys, at: 5s, for: 10s, nodes: [west], rates: {destroy: 3}}
    - {name: silence, at: 15s, for: 5s, rates: {}}
faults: [{at: 5s, for: 10s, partition: [[east], [west]]}]
expect: {lost_writes: 0, resurrections: 0, converge_within: 5s, merge_determinism: 0}
`
	sc, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verdict.Pass {
		t.Fatalf("%s\n%v", res.Summary(), res.Violations)
	}
	for _, ev := range res.Trace {
		if ev.Kind != "op" {
			continue
		}
		at := ev.T.D().Seconds()
		west := strings.HasPrefix(ev.Node, "west")
		switch {
		case at >= 15:
			t.Fatalf("an operation during the silent phase: %+v", ev)
		case at >= 5 && west && ev.Op != "destroy":
			t.Fatalf("west did %s during its destroy phase", ev.Op)
		case at >= 5 && !west && ev.Op != "set" && ev.Op != "touch":
			t.Fatalf("east did %s during its write phase", ev.Op)
		}
	}
	bad := strings.Replace(text, "{name: silence, at: 15s", "{name: east-writes, at: 15s", 1)
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "workload.phases[2].name") {
		t.Fatalf("a phase defined twice: %v", err)
	}
}

// One-way degradation slows one direction only; random flaps draw their
// periods from the seed.
func TestOneWayDegradeAndRandomFlaps(t *testing.T) {
	text := minimal + `faults:
  - {at: 1s, for: 8s, degrade: {a: [a], b: [b], one_way: true, delay: 300ms}}
  - {at: 1s, for: 8s, flap: {a: [a-1], b: [a-2], period: 2s, down: 500ms, random: true}}
`
	sc, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(r, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	var ab, ba int64
	e.at(2e9, func() {
		ab, ba = e.net.params(0, 2).delay, e.net.params(2, 0).delay
	})
	e.run()
	if ab-ba != 300e6 {
		t.Fatalf("delay a->b %v, b->a %v: want 300ms more one way only", ab, ba)
	}
	var ups []string
	for _, ev := range e.trace.all() {
		if ev.Kind == "fault" {
			ups = append(ups, ev.Detail)
		}
	}
	if !strings.Contains(strings.Join(ups, "|"), "(random)") || !strings.Contains(strings.Join(ups, "|"), "a -> b") {
		t.Fatalf("fault labels: %v", ups)
	}
}
