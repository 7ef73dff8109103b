//go:build !sessionmesh_plant

package placement

// Without the sessionmesh_plant build tag no planted bug exists
// (plant_on.go).

func plantOrder() bool { return false }

func plantHolders(int, []string, int) []string { return nil }
