//go:build !sessionmesh_plant

package crdt

// Without the sessionmesh_plant build tag no planted bug exists
// (plant_on.go).

func arrivalTieBreak() bool { return false }

func plantArrival(_, _, joined Fields) Fields { return joined }
