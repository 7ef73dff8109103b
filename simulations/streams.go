package simulations

import (
	"hash/fnv"
	"math/rand/v2"
)

// Random streams. Every draw of a run comes from a stream of its own,
// named by what it is for and by the nodes it concerns: a link's losses,
// delays, duplicates and connection phases; a node's clients (when they
// act, what they do, on which session and key) and the tokens they are
// given; a node's core; a dialer's jitter; the faults; the consistency
// clients. Two things follow:
//   - a draw depends only on the seed and on what its own part of the mesh
//     did, never on the order in which independent parts ran, so that
//     regions can be stepped apart (on separate cores) and still replay
//     bit for bit;
//   - a change to one part of a scenario (a node or fault removed by
//     `sim shrink`) leaves the other parts' draws as they were.
//
// Streams are named by node names, not indexes, for the second reason.
const (
	streamLink        = "link"        // from, to: loss, delay jitter, duplication, ping phase
	streamDial        = "dial"        // from, to: the redial loop's jitter
	streamWorkload    = "workload"    // node: the clients' operations
	streamTokens      = "tokens"      // node: the tokens of the sessions its clients create
	streamCore        = "core"        // node: a seed for each start of its core
	streamDurability  = "durability"  // node: the phase of its fsync timer
	streamFaults      = "faults"      // random flap periods
	streamConsistency = "consistency" // the versioned clients of a consistency workload
	streamMerge       = "merge"       // the merge-determinism check's re-merge orders
)

// stream returns the run's random stream kind for the given node names.
// The same arguments give the same stream in every run of the seed.
func (e *engine) stream(kind string, names ...string) *rand.Rand {
	return rand.New(rand.NewPCG(e.seed, streamKey(kind, names...)))
}

// streamKey is the stream's identity: the FNV-1a hash of its kind and
// names, each followed by a zero byte so that "a"+"bc" and "ab"+"c" differ
// (the same in every process, unlike maphash's).
func streamKey(kind string, names ...string) uint64 {
	h := fnv.New64a()
	for _, s := range append([]string{kind}, names...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}
