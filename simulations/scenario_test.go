package simulations

import (
	"errors"
	"strings"
	"testing"
)

const minimal = `
name: tiny
duration: 10s
quiet: 5s
regions: [{name: a}, {name: b}]
latency: [{between: [a, b], delay: 20ms}]
nodes: [{region: a, count: 2}, {name: b-1, region: b}]
workload:
  rates: {create: 1, set: 2, read: 2}
`

func TestBadScenariosGiveClearErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty file"},
		{"unknown field", minimal + "lattency: []\n", "line 10, lattency: field lattency not found"},
		{"unknown nested field", strings.Replace(minimal, "rates:", "ratez:", 1), "workload.ratez: field ratez not found"},
		{"bad duration", strings.Replace(minimal, "duration: 10s", "duration: 10 minutes", 1), `line 3, duration: "10 minutes" is not a duration`},
		{"wrong type", strings.Replace(minimal, "count: 2", "count: two", 1), "line 7, nodes[0].count: cannot unmarshal"},
		{"wrong type, block style", minimal + "faults:\n  - at: 1s\n    for: 1s\n    crash: a-1\n", "line 13, faults[0].crash: cannot unmarshal"},
		{"duration not a scalar", strings.Replace(minimal, "duration: 10s", "duration: {a: 1}", 1), "line 3, duration: want a duration"},
		{"two errors", strings.Replace(strings.Replace(minimal, "count: 2", "count: two", 1), "{create: 1,", "{create: many,", 1), "line 9, workload.rates.create: cannot unmarshal"},
		{"no name", strings.Replace(minimal, "name: tiny", "", 1), "name is missing"},
		{"missing latency", strings.Replace(minimal, "regions: [{name: a}, {name: b}]", "regions: [{name: a}, {name: b}, {name: c}]", 1), "no entry between regions a and c"},
		{"unknown region", strings.Replace(minimal, "name: b-1, region: b", "name: b-1, region: mars", 1), `unknown region "mars"`},
		{"duplicate node", strings.Replace(minimal, "name: b-1", "name: a-1", 1), `node "a-1" defined twice`},
		{"unknown selector", minimal + "faults: [{at: 1s, for: 1s, crash: [mars]}]\n", `faults[0].crash: unknown node or region "mars"`},
		{"two kinds", minimal + "faults: [{at: 1s, for: 1s, crash: [a-1], partition: [[a]]}]\n", "exactly one of"},
		{"no kind", minimal + "faults: [{at: 1s, for: 1s}]\n", "exactly one of"},
		{"partition without for", minimal + "faults: [{at: 1s, partition: [[a]]}]\n", "needs `for`"},
		{"flap", minimal + "faults: [{at: 1s, for: 5s, flap: {a: [a], b: [b], period: 1s, down: 2s}}]\n", "0 < down < period"},
		{"skew", minimal + "  skew: 0.5\n", "workload.skew"},
		{"probability", strings.Replace(minimal, "quiet: 5s", "quiet: 5s\nnetwork: {loss: 1.5}", 1), "network.loss: must be a probability"},
		{"expectation", minimal + "expect: {lost_writes: -1}\n", "expect.lost_writes: must not be negative"},
		{"two documents", minimal + "---\nname: other\n", "more than one YAML document"},
		{"node config", minimal + "config: {sync_interval: 0s}\n", "SyncInterval"},
		{"one-way path", minimal + "faults: [{at: 1s, for: 1s, crash: [a-1]}, {at: 1s, for: 1s, one_way: {from: [a], to: [mars]}}]\n", `faults[1].one_way.to: unknown node or region "mars"`},
		{"durability", strings.Replace(minimal, "name: b-1, region: b", "name: b-1, region: b, durability: sometimes", 1), `nodes[1].durability: "sometimes"`},
		{"transport", strings.Replace(minimal, "quiet: 5s", "quiet: 5s\nnetwork: {transport: {redial_jitter: 2}}", 1), "network.transport.redial_jitter: must be in [0, 1)"},
		{"phase", strings.Replace(minimal, "rates: {create: 1, set: 2, read: 2}", "rates: {create: 1, set: 2, read: 2}\n  phases: [{name: p, at: 1s, for: 0s, rates: {}}]", 1), "workload.phases[0].for: must be positive"},
		{"power loss", minimal + "faults: [{at: 1s, for: 1s, disk: [a-1], power_loss: true}]\n", "faults[0].power_loss: only a crash"},
		{"late only", strings.Replace(strings.Replace(minimal, "{region: a, count: 2}, ", "", 1), "region: b}", "region: b, start: 1s}", 1), "no node starts at time 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc, err := Parse([]byte(c.yaml))
			if err == nil {
				_, err = sc.Resolve()
			}
			if err == nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, ErrScenario) {
				t.Errorf("error does not wrap ErrScenario: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// Partition groups that share a node are refused when the scenario is
// read, with the path of the group: a run used to start, then stop as
// "not judged", and a sweep marked every seed so.
func TestPartitionGroupsMustNotOverlap(t *testing.T) {
	for _, groups := range []string{"[[a], [a-1, b]]", "[[a-1], [b], [b-1]]"} {
		_, err := Parse([]byte(minimal + "faults: [{at: 1s, for: 1s, partition: " + groups + "}]\n"))
		if err == nil || !errors.Is(err, ErrScenario) || !strings.Contains(err.Error(), "faults[0].partition[") || !strings.Contains(err.Error(), "must not overlap") {
			t.Fatalf("partition %s: got %v", groups, err)
		}
	}
	if _, err := Parse([]byte(minimal + "faults: [{at: 1s, for: 1s, partition: [[a-1], [b]]}]\n")); err != nil {
		t.Fatalf("disjoint groups refused: %v", err)
	}
}

func TestResolveIsIdempotentAndExpandsGroups(t *testing.T) {
	sc, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r1, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range r1.Nodes {
		names = append(names, n.Name)
	}
	if got := strings.Join(names, ","); got != "a-1,a-2,b-1" {
		t.Fatalf("nodes %s", got)
	}
	r2, err := r1.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	y1, _ := r1.yaml()
	y2, _ := r2.yaml()
	if string(y1) != string(y2) {
		t.Fatalf("resolving twice changed the scenario:\n%s\n---\n%s", y1, y2)
	}
	back, err := Parse(y1)
	if err != nil {
		t.Fatalf("the resolved scenario does not parse: %v\n%s", err, y1)
	}
	if back.Config.SyncInterval == nil || back.Config.SyncInterval.D() != r1.Config.SyncInterval.D() {
		t.Fatal("resolved config lost in the round trip")
	}
}

func TestLoadScenarioByNameOrPath(t *testing.T) {
	if _, err := LoadScenario("three-region-split-heal"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadScenario("scenarios/three-region-split-heal.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadScenario("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "no shipped scenario") {
		t.Fatalf("got %v", err)
	}
}
