package simulations

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestTraceLogEncodesAsJSON: the trace log gives back the events it took,
// and encodes them byte for byte as encoding/json does (the fingerprint
// hashes that form), skipping the kind asked.
func TestTraceLogEncodesAsJSON(t *testing.T) {
	evs := []TraceEvent{
		{T: Duration(1500 * time.Microsecond), Kind: "op", Node: "us-1", Op: "set", Session: "abc", Key: "k1", Result: "ok"},
		{T: Duration(time.Hour + 3*time.Nanosecond), Kind: "rejected", Node: "eu-1", Peer: "ap-1", Detail: `node: gossip from "ap-1": <bad> & worse`},
		{T: Duration(-2 * time.Second), Kind: "violation", Fault: "lost_writes", Detail: "x"},
		{Kind: "", Detail: "tab\there, nl\n, del\x7f, é, \u2028, invalid \xff"},
		{T: Duration(42), Kind: "op", Node: "us-1", Op: "set", Session: "abc", Key: "k1", Result: "ok"},
	}
	var l traceLog
	for _, ev := range evs {
		l.add(ev)
	}
	if got := l.all(); !reflect.DeepEqual(got, evs) {
		t.Fatalf("all() = %+v\nwant %+v", got, evs)
	}
	for _, skip := range []string{"violation", "absent"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		for _, ev := range evs {
			if ev.Kind != skip {
				if err := enc.Encode(ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		var got bytes.Buffer
		l.encode(&got, 0, skip)
		if got.String() != want.String() {
			t.Fatalf("skip %q: encoded\n%s\nwant\n%s", skip, got.String(), want.String())
		}
	}
}

// TestTraceLogFrozen: a frozen trace keeps the events it had while the log
// goes on (across chunks), and encoding or listing it, then the log from
// where it stopped, gives what the whole log gives.
func TestTraceLogFrozen(t *testing.T) {
	var l traceLog
	add := func(i int) {
		ev := TraceEvent{T: Duration(i), Kind: "op", Node: "n" + strconv.Itoa(i%3), Session: strconv.Itoa(i)}
		if i%7 == 0 {
			ev = TraceEvent{T: Duration(i), Kind: "violation", Detail: strconv.Itoa(i)}
		}
		l.add(ev)
	}
	for _, split := range []int{0, 1, chunkLen - 1, chunkLen, chunkLen + 5} {
		l = traceLog{}
		for i := range split {
			add(i)
		}
		f := l.frozen()
		for i := split; i < 2*chunkLen+3; i++ {
			add(i)
		}
		if f.len() != split {
			t.Fatalf("split %d: frozen log holds %d events", split, f.len())
		}
		if got, want := l.appendFrom(f.all(), f.len()), l.all(); !reflect.DeepEqual(got, want) {
			t.Fatalf("split %d: frozen events then the rest differ from the whole trace", split)
		}
		var whole, parts bytes.Buffer
		l.encode(&whole, 0, "violation")
		f.encode(&parts, 0, "violation")
		l.encode(&parts, f.len(), "violation")
		if whole.String() != parts.String() {
			t.Fatalf("split %d: encoded in two parts differs from encoded whole", split)
		}
	}
}

// sortedSeconds gives the seconds of the durations logged in the order
// slices.Sort gives them: negatives, zeros, long runs of equal values and
// durations of years included.
func TestSortedSeconds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, 1 << 10, 5000, 70000} {
		var l chunkLog[int64]
		want := make([]float64, n)
		for i := range want {
			var d int64
			switch rng.IntN(6) {
			case 0:
				d = -rng.Int64N(1 << 40)
			case 1:
				d = 0
			case 2:
				d = 250 * int64(time.Millisecond) // many equal
			case 3:
				d = rng.Int64() - rng.Int64()
			default:
				d = rng.Int64N(1 << uint(rng.IntN(60)+1))
			}
			l.add(d)
			want[i] = time.Duration(d).Seconds()
		}
		slices.Sort(want)
		if got := sortedSeconds(&l); !slices.Equal(got, want) {
			t.Fatalf("%d durations: sorted differently from slices.Sort of their seconds", n)
		}
	}
	// Keys differing in 1 to 8 low bytes: the radix sort moves them an
	// odd number of times as often as an even one.
	for bytes := 1; bytes <= 8; bytes++ {
		xs := make([]int64, 3000)
		for i := range xs {
			xs[i] = int64(rng.Uint64() >> (64 - 8*bytes))
		}
		want := slices.Clone(xs)
		slices.Sort(want)
		if sortInt64s(xs); !slices.Equal(xs, want) {
			t.Fatalf("keys of %d bytes: sorted differently from slices.Sort", bytes)
		}
	}
}

// opSets keeps each write's two node sets apart from every other's, across
// chunks, for meshes needing more than one word.
func TestOpSets(t *testing.T) {
	for _, nodes := range []int{5, 64, 65, 200, maxNodes} {
		s := opSets{words: max(1, (nodes+63)/64)}
		const writes = chunkLen + 7
		node := func(i, k int) int { return (i*7 + k*13) % nodes }
		for i := range writes {
			var pend, covered bitset
			pend.set(node(i, 0))
			covered.set(node(i, 1))
			s.add(&pend, &covered)
		}
		for i := range int32(writes) {
			p, c := s.pend(i), s.covered(i)
			if p.empty() || !p.has(node(int(i), 0)) || !c.has(node(int(i), 1)) {
				t.Fatalf("%d nodes, write %d: sets %v %v", nodes, i, p, c)
			}
			p.clear(node(int(i), 0))
			if !p.empty() || c.empty() {
				t.Fatalf("%d nodes, write %d: pending %v after clearing its node, covered %v", nodes, i, p, c)
			}
			var b bitset
			b.set(node(int(i), 1))
			if !c.meets(&b) || s.covered(i).has(node(int(i), 0)) && node(int(i), 0) != node(int(i), 1) {
				t.Fatalf("%d nodes, write %d: covered %v", nodes, i, c)
			}
		}
	}
}

// TestTraceLogInternsByValue: a string gets one index however it is
// passed (another copy of the same bytes included), and strings that the
// remembered ones' hash cannot tell apart (same length, same first, middle
// and last byte) get their own.
func TestTraceLogInternsByValue(t *testing.T) {
	var l traceLog
	l.add(TraceEvent{Kind: "op"})
	idx := map[string]int32{}
	for round := range 3 {
		for i := range 5000 {
			// "a" + 4 digits + "z": the hashed bytes are the same for all.
			s := "a" + strconv.Itoa(10000 + i)[1:3] + "m" + strconv.Itoa(10000 + i)[3:] + "z"
			if round == 1 {
				s = string([]byte(s)) // another copy
			}
			got := l.intern(s)
			if want, ok := idx[s]; ok && got != want {
				t.Fatalf("round %d: %q interned as %d, before as %d", round, s, got, want)
			}
			idx[s] = got
			if l.strs[got] != s {
				t.Fatalf("%q interned as %d, which holds %q", s, got, l.strs[got])
			}
		}
	}
	if len(l.strs) != 5000+2 { // "", "op", the 5000
		t.Fatalf("%d strings interned, want %d", len(l.strs), 5002)
	}
}
