package simulations_test

import (
	"fmt"

	"github.com/sessionmesh/sessionmesh/simulations"
)

func ExampleRun() {
	sc, err := simulations.Parse([]byte(`
name: example
duration: 20s
quiet: 10s
regions: [{name: us}, {name: eu}]
latency: [{between: [us, eu], delay: 40ms, jitter: 5ms}]
nodes: [{region: us, count: 2}, {name: eu-1, region: eu}]
workload:
  rates: {create: 1, set: 4, touch: 1, destroy: 0.2, read: 4}
faults:
  - {at: 5s, for: 8s, partition: [[eu]]}
expect: {converge_within: 10s, lost_writes: 0, resurrections: 0}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := simulations.Run(sc, 1)
	if err != nil {
		fmt.Println("not judged:", err)
		return
	}
	for _, c := range res.Verdict.Checks {
		if c.Judged {
			fmt.Println(c.Name, c.Pass)
		}
	}
	fmt.Println("pass:", res.Verdict.Pass)
	// Output:
	// converge_within true
	// lost_writes true
	// resurrections true
	// pass: true
}
