package simulations

import (
	"testing"
)

// Every shipped scenario passes with its own seed.
func TestLibrary(t *testing.T) {
	names := Library()
	if len(names) < 8 {
		t.Fatalf("library has %d scenarios: %v", len(names), names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc, err := LoadScenario(name)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(sc, sc.Seed)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%.0fs simulated in %v", res.Figures.Simulated, res.Wall)
			if !res.Verdict.Pass {
				t.Errorf("%s\n%v", res.Summary(), res.Violations)
			}
			// Once the mesh has converged every running node holds every
			// write (or something newer): the figure must say so.
			if res.Figures.Converge >= 0 && res.Figures.Unreplicated != 0 {
				t.Errorf("converged, yet %d (write, node) pairs reported unreplicated", res.Figures.Unreplicated)
			}
		})
	}
}
