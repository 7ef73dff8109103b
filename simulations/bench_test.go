package simulations

import (
	"testing"

	"github.com/sessionmesh/sessionmesh/internal/cputime"
)

// BenchmarkSteadyHour measures the speed target: 5 nodes in 3 regions, one
// simulated hour at 10 writes/s per node. It reports simulated seconds per
// wall second (the target), and per second of the process's CPU time, the
// collector's included: the second moves less with the machine's other
// load, which on a shared machine changes the first by a fifth from one
// minute to the next.
//
//	go test ./simulations -run '^$' -bench SteadyHour -benchtime 1x
func BenchmarkSteadyHour(b *testing.B) {
	sc, err := Load("testdata/steady-hour.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cpu0 := cputime.Process()
		res, err := Run(sc, 1)
		cpu := cputime.Process() - cpu0
		if err != nil {
			b.Fatal(err)
		}
		if !res.Verdict.Pass {
			b.Fatalf("%s", res.Summary())
		}
		b.ReportMetric(res.Figures.Simulated/res.Wall.Seconds(), "sim-s/wall-s")
		if cpu > 0 {
			b.ReportMetric(res.Figures.Simulated/cpu.Seconds(), "sim-s/cpu-s")
		}
		b.ReportMetric(float64(res.Figures.Writes), "writes")
	}
}
