package simulations

import (
	"testing"
)

// BenchmarkSteadyHour measures the speed target: 5 nodes in 3 regions, one
// simulated hour at 10 writes/s per node. It reports simulated seconds per
// wall second.
//
//	go test ./simulations -run '^$' -bench SteadyHour -benchtime 1x
func BenchmarkSteadyHour(b *testing.B) {
	sc, err := Load("testdata/steady-hour.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := Run(sc, 1)
		if err != nil {
			b.Fatal(err)
		}
		if !res.Verdict.Pass {
			b.Fatalf("%s", res.Summary())
		}
		b.ReportMetric(res.Figures.Simulated/res.Wall.Seconds(), "sim-s/wall-s")
		b.ReportMetric(float64(res.Figures.Writes), "writes")
	}
}
