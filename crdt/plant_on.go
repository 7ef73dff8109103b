//go:build sessionmesh_plant

package crdt

// Planted bugs, for the simulator's tests that prove its checkers catch
// them (go test -tags sessionmesh_plant). A build without the tag has no
// way to turn them on: plant_off.go makes every check a constant false.

// PlantArrivalTieBreak makes Merge break a tie of two fields' timestamps
// (equal Time, different nodes) in favour of the one arriving, instead of
// by node id: a merge whose result depends on delivery order.
var PlantArrivalTieBreak bool

func arrivalTieBreak() bool { return PlantArrivalTieBreak }

// plantArrival lets the fields of d that tie with before's win in joined.
func plantArrival(before, d, joined Fields) Fields {
	for k, f := range d.All() {
		if g, ok := before.Get(k); ok && g.TS.Time == f.TS.Time && g.TS.Node != f.TS.Node {
			joined = joined.With(k, f)
		}
	}
	return joined
}
