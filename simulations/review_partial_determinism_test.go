package simulations

import (
	"testing"
	"time"
)

// Partial replication runs are deterministic too: the same seed gives the
// same run (placement, direct delta delivery, hellos and handoffs iterate
// maps of peers and regions, which must not leak their order).
func TestReviewPartialSameSeedSameFingerprint(t *testing.T) {
	sc, err := LoadScenario("partial-churn-small")
	if err != nil {
		t.Fatal(err)
	}
	// Shorter, still past the first join (15 s): seconds, not tens.
	sc.Duration, sc.Quiet = Duration(18*time.Second), Duration(5*time.Second)
	a, err := Run(sc, 11)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(sc, 11)
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint || len(a.Trace) != len(b.Trace) {
		t.Fatalf("same seed, different runs: %s (%d events) and %s (%d events)", a.Fingerprint, len(a.Trace), b.Fingerprint, len(b.Trace))
	}
}
