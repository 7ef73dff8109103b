package simulations

import (
	"strings"
	"testing"
	"time"
)

// Power losses on a-1 while it is cut off and takes writes (so that only
// it holds them): under durability none it loses what its last background
// fsync had not synced, and lost_writes allows exactly that.
const powerLossScenario = `
name: power
duration: 10s
quiet: 10s
regions: [{name: a}, {name: b}]
latency: [{between: [a, b], delay: 20ms}]
nodes: [{region: a, count: 2}, {name: b-1, region: b}]
workload:
  rates: {create: 20, set: 40, read: 2}
faults:
  - {at: 1s, for: 8s, partition: [[a-1]]}
  - {at: 3300ms, for: 1s, crash: [a-1], power_loss: true}
  - {at: 6700ms, for: 1s, crash: [a-1], power_loss: true}
expect: {lost_writes: 0, resurrections: 0, read_your_writes_violations: 0, merge_determinism: 0}
`

func runText(t *testing.T, text string, h *hooks) *Result {
	t.Helper()
	sc, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(sc, 3, h)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func withDurability(text, mode string) string {
	return strings.Replace(text, "nodes: [{region: a, count: 2}", "nodes: [{region: a, count: 2, durability: "+mode+"}", 1)
}

func TestPowerLossLosesOnlyWhatNoneAllows(t *testing.T) {
	none := runText(t, withDurability(powerLossScenario, "none"), nil)
	if !none.Verdict.Pass {
		t.Fatalf("none: %s\n%v", none.Summary(), none.Violations)
	}
	if none.Figures.AllowedLost == 0 {
		t.Fatalf("none: a power loss lost nothing:\n%s", none.Summary())
	}
	t.Logf("none: %d writes allowed lost", none.Figures.AllowedLost)
	for _, mode := range []string{"sync", "group"} {
		r := runText(t, withDurability(powerLossScenario, mode), nil)
		if !r.Verdict.Pass || r.Figures.AllowedLost != 0 {
			t.Fatalf("%s: a power loss may lose %d writes:\n%s", mode, r.Figures.AllowedLost, r.Summary())
		}
	}
	// A store that loses one interval more than none permits is caught.
	bad := runText(t, withDurability(powerLossScenario, "none"), &hooks{powerLossExtra: int64(time.Second)})
	mustFail(t, bad, CheckLostWrites)
}

// A disk fault: the node refuses its clients' writes and keeps remote
// deltas for a retry; nothing acknowledged is lost. A node that
// acknowledged writes its disk failed is caught.
func TestDiskFaultRefusesNeverLoses(t *testing.T) {
	text := minimal + "faults: [{at: 2s, for: 3s, disk: [a-1]}]\nexpect: {lost_writes: 0, read_your_writes_violations: 0, merge_determinism: 0, converge_within: 5s}\n"
	res := runText(t, text, nil)
	if !res.Verdict.Pass {
		t.Fatalf("%s\n%v", res.Summary(), res.Violations)
	}
	if res.Figures.DiskErrors == 0 {
		t.Fatal("the disk fault failed no write")
	}
	refused := 0
	for _, ev := range res.Trace {
		if ev.Node == "a-1" && ev.Result == "refused" && strings.Contains(ev.Detail, "disk") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("a-1 refused no write during its disk fault")
	}
	acked := runText(t, text, &hooks{skipApply: func(e *engine, n int, op opKind) bool {
		return e.nodes[n].diskFaults > 0
	}})
	mustFail(t, acked, CheckLostWrites)
}

// The Badger backend runs the same scenario on disk.
func TestBadgerStorage(t *testing.T) {
	res := runText(t, withDurability(minimal+"storage: badger\nexpect: {lost_writes: 0, converge_within: 5s, merge_determinism: 0}\n", "none"), nil)
	if !res.Verdict.Pass {
		t.Fatalf("%s\n%v", res.Summary(), res.Violations)
	}
	if res.Scenario.Storage != StorageBadger || res.Figures.Writes == 0 {
		t.Fatalf("storage %q, %d writes", res.Scenario.Storage, res.Figures.Writes)
	}
}
