//go:build sessionmesh_plant

package placement

// Planted bugs, for the simulator's tests that prove its checkers catch
// them (go test -tags sessionmesh_plant). A build without the tag has no
// way to turn them on: plant_off.go makes every check a constant false.

// PlantOrder makes NewTable place slots by the members' positions in the
// list it is given, as a forgotten sort would: slot s goes to the members
// at positions s, s+1, ... (mod N). The node passes members in the order it
// learned them, so peers that learned them in other orders disagree on the
// holders.
var PlantOrder bool

func plantOrder() bool { return PlantOrder }

func plantHolders(slot int, members []string, r int) []string {
	n := len(members)
	if r <= 0 || r > n {
		r = n
	}
	out := make([]string, 0, r)
	for i := range r {
		out = append(out, members[(slot+i)%n])
	}
	return out
}
