package simulations

import (
	"math/rand/v2"
	"testing"
)

// The queue pops events by time, ties in the order they were scheduled,
// with pushes and pops interleaved, each with what it was scheduled with.
func TestQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q queue
	var last event
	popped := 0
	pop := func() {
		ev := q.pop()
		if popped > 0 && (ev.at < last.at || ev.at == last.at && ev.seq <= last.seq) {
			t.Fatalf("popped (%d, %d) after (%d, %d)", ev.at, ev.seq, last.at, last.seq)
		}
		if ev.m == nil || uint64(ev.m.from) != ev.seq {
			t.Fatalf("event %d popped with the message of another", ev.seq)
		}
		last = ev
		popped++
	}
	for range 20000 {
		if q.len() == 0 || rng.IntN(3) > 0 {
			// Never before what was popped; many ties.
			m := &message{from: int(q.seq + 1)} // which event it is
			q.add(event{at: last.at + rng.Int64N(20), m: m})
			continue
		}
		pop()
	}
	for q.len() > 0 {
		pop()
	}
	if popped != int(q.seq) {
		t.Fatalf("popped %d of %d events", popped, q.seq)
	}
}
