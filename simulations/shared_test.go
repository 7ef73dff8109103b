package simulations

import "testing"

// TestBroadcastSharedUnchanged: every recipient of a broadcast takes the
// same decoded batch (network.go), which is sound only while no core
// modifies what it receives. Scenarios with partitions, deferred deltas
// (clock skew), parked versioned deltas and partial replication check,
// before each delivery, that the batch still equals a fresh decode.
func TestBroadcastSharedUnchanged(t *testing.T) {
	for _, name := range []string{"three-region-split-heal", "clock-skew-beyond-bound", "revoke-under-partition", "partial-churn-small"} {
		t.Run(name, func(t *testing.T) {
			res := runHooked(t, name, 1, &hooks{verifyShared: true})
			if res.Figures.Writes == 0 {
				t.Fatal("no writes: nothing was broadcast")
			}
		})
	}
}
