//go:build race

package persist

// raceEnabled: the race detector slows instrumented code unevenly, so a
// test comparing two timings loosens its bound under it.
const raceEnabled = true
