//go:build sessionmesh_plant

package simulations

import (
	"testing"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// A merge that breaks timestamp ties by arrival order is caught by the
// merge-determinism checker at the first seed, though the run itself may
// never produce a tie (its tie probes do). Needs -tags sessionmesh_plant:
// the bug lives in crdt.Merge, and only that tag can plant it.
func TestPlantedArrivalOrderTieBreak(t *testing.T) {
	crdt.PlantArrivalTieBreak = true
	defer func() { crdt.PlantArrivalTieBreak = false }()
	sc, err := LoadScenario("silent-cut-90s")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustFail(t, res, CheckMergeDeterminism)
}
