package crdt

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// guardModel is a few replicas of one session writing as the node package
// does (a change-only guarded delta from a covered state, else the whole
// state under an empty guard; sometimes an unversioned write), over a
// network that loses, duplicates, reorders and joins messages, with
// anti-entropy (unguarded states) and restarts (a decoded state is not known
// covered). held records, for every version entry (w, t) ever issued, the
// registers w held when it wrote at t.
type guardModel struct {
	t      *rapid.T
	peers  []*Session
	queue  []message
	held   map[VersionEntry]Fields
	clock  int64
	writes int
}

type message struct {
	to int
	d  *Session
}

func newGuardModel(t *rapid.T, n int) *guardModel {
	m := &guardModel{t: t, held: map[VersionEntry]Fields{}}
	// Peer 0 creates the session; the others learn it from the network.
	ts := m.stamp(0)
	d := Create(genID, ts, genBase.Add(time.Hour), time.Hour)
	d.Fields = d.Fields.With("a", Field{Value: "0", TS: ts})
	k, f := VersionField(ts)
	d.Fields = d.Fields.With(k, f)
	d.Guard = &Guard{}
	for p := range n {
		m.peers = append(m.peers, &Session{ID: genID})
		if p == 0 {
			mustMerge(t, m.peers[0], d)
			m.held[VersionEntry{Node: ts.Node, Time: ts.Time}] = m.peers[0].Fields
		} else {
			m.queue = append(m.queue, message{p, d})
		}
	}
	return m
}

func (m *guardModel) stamp(p int) Timestamp {
	m.clock++
	return NewTimestamp(genBase.UnixMilli()+m.clock, 0, NodeID(p+1))
}

// write makes a local write at p and queues its delta for every other peer.
func (m *guardModel) write(p int, versioned bool) {
	s := m.peers[p]
	if s.IsDestroyed() || s.Created.IsZero() {
		return
	}
	ts := m.stamp(p)
	m.writes++
	var d *Session
	switch {
	case !versioned:
		d = s.Header()
	case s.Covered():
		d = s.Header()
		d.Guard = &Guard{Need: s.Version()}
	default:
		d = s.Clone()
		d.Guard = &Guard{}
	}
	for _, key := range rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"a", "b", "c", "d"}), 1, 2, rapid.ID).Draw(m.t, "keys") {
		if rapid.IntRange(0, 4).Draw(m.t, "remove") == 0 {
			d.Fields = d.Fields.With(key, Field{Removed: true, TS: ts})
		} else {
			d.Fields = d.Fields.With(key, Field{Value: fmt.Sprint(m.writes), TS: ts})
		}
	}
	if versioned {
		k, f := VersionField(ts)
		d.Fields = d.Fields.With(k, f)
	}
	ch := mustMerge(m.t, s, d)
	if versioned {
		if ch.Dropped || ch.Unbacked {
			m.t.Fatalf("a writer did not take its own delta whole: %+v", ch)
		}
		m.held[VersionEntry{Node: ts.Node, Time: ts.Time}] = s.Fields
	}
	for q := range m.peers {
		if q != p {
			m.queue = append(m.queue, message{q, d})
		}
	}
}

// deliver hands queued message i to its peer through the wire format,
// keeping a copy when dup.
func (m *guardModel) deliver(i int, dup bool) {
	msg := m.queue[i]
	if !dup {
		m.queue = slices.Delete(m.queue, i, i+1)
	}
	data, err := MarshalBatch(NewBatch(msg.d), DefaultLimits())
	if err != nil {
		m.t.Fatalf("marshal %s: %v", describe(msg.d), err)
	}
	b, err := UnmarshalBatch(data, DefaultLimits())
	if err != nil {
		m.t.Fatalf("unmarshal: %v", err)
	}
	got := b.Get(genID)
	if !got.Equal(msg.d) {
		m.t.Fatalf("batch round trip changed the delta\n got %s\nwant %s", describe(got), describe(msg.d))
	}
	mustMerge(m.t, m.peers[msg.to], got)
}

// joinQueued joins message j into message i when both go to one peer, as a
// sender's pending batch or a receiver's deferred batch does.
func (m *guardModel) joinQueued(i, j int) {
	if i == j || m.queue[i].to != m.queue[j].to {
		return
	}
	b := NewBatch(m.queue[i].d, m.queue[j].d)
	m.queue[i].d = b.Get(genID)
	m.queue = slices.Delete(m.queue, j, j+1)
}

// antiEntropy merges p's whole state into q, unguarded.
func (m *guardModel) antiEntropy(p, q int) {
	mustMerge(m.t, m.peers[q], m.peers[p].Clone())
}

// restart reloads p's state from its stored encoding.
func (m *guardModel) restart(p int) {
	s := m.peers[p]
	if s.Created.IsZero() && !s.IsDestroyed() {
		return // nothing stored yet
	}
	got, err := UnmarshalSession(encode(m.t, s), DefaultLimits())
	if err != nil {
		m.t.Fatalf("unmarshal: %v", err)
	}
	if got.Covered() {
		m.t.Fatalf("a decoded state claims to be covered")
	}
	m.peers[p] = got
}

// check asserts the version invariant on every peer: an entry (w, t) means
// holding every register w held at t, and a covered state holds no
// register its entries do not stand for.
func (m *guardModel) check() {
	for p, s := range m.peers {
		var stood Fields
		for _, e := range s.Version() {
			want, ok := m.held[e]
			if !ok {
				m.t.Fatalf("peer %d holds entry %v that no write issued", p, e)
			}
			for k, f := range want.All() {
				if isVersionKey(k) {
					continue
				}
				if got, ok := s.Fields.Get(k); !ok || got.Compare(f) < 0 {
					m.t.Fatalf("peer %d holds entry %v but not %q=%+v that node %d held then (has %+v)\nstate %s", p, e, k, f, e.Node, got, describe(s))
				}
			}
			stood, _ = stood.Join(want)
		}
		if !s.Covered() {
			continue
		}
		for k, f := range s.Fields.All() {
			if isVersionKey(k) {
				continue
			}
			if g, ok := stood.Get(k); !ok || f.Compare(g) > 0 {
				m.t.Fatalf("peer %d claims covered but %q=%+v is stood for by no entry (entries stand for %+v)", p, k, f, g)
			}
		}
	}
}

func isVersionKey(k string) bool {
	return len(k) >= len(VersionKeyPrefix) && k[:len(VersionKeyPrefix)] == VersionKeyPrefix
}

// TestGuardedDeltasKeepVersions runs random histories of the guard model
// and checks the version invariant after every step, then that anti-entropy
// brings every peer to the same state.
func TestGuardedDeltasKeepVersions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 4).Draw(t, "peers")
		m := newGuardModel(t, n)
		peer := rapid.IntRange(0, n-1)
		steps := rapid.IntRange(1, 60).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 11).Draw(t, "op") {
			case 0, 1, 2, 3:
				m.write(peer.Draw(t, "writer"), true)
			case 4:
				m.write(peer.Draw(t, "writer"), false)
			case 5, 6, 7:
				if len(m.queue) > 0 {
					m.deliver(rapid.IntRange(0, len(m.queue)-1).Draw(t, "msg"), rapid.IntRange(0, 5).Draw(t, "dup") == 0)
				}
			case 8:
				if len(m.queue) > 0 { // lost
					i := rapid.IntRange(0, len(m.queue)-1).Draw(t, "lost")
					m.queue = slices.Delete(m.queue, i, i+1)
				}
			case 9:
				if len(m.queue) > 1 {
					m.joinQueued(rapid.IntRange(0, len(m.queue)-1).Draw(t, "i"), rapid.IntRange(0, len(m.queue)-1).Draw(t, "j"))
				}
			case 10:
				p, q := peer.Draw(t, "from"), peer.Draw(t, "to")
				if p != q {
					m.antiEntropy(p, q)
				}
			case 11:
				m.restart(peer.Draw(t, "restart"))
			}
			m.check()
		}
		// Deliver what is left in any order, then repair all pairs.
		for len(m.queue) > 0 {
			m.deliver(rapid.IntRange(0, len(m.queue)-1).Draw(t, "rest"), false)
			m.check()
		}
		for range 2 {
			for p := range n {
				for q := range n {
					if p != q {
						m.antiEntropy(p, q)
					}
				}
			}
		}
		m.check()
		for p := 1; p < n; p++ {
			if a, b := encode(t, m.peers[0]), encode(t, m.peers[p]); !bytes.Equal(a, b) {
				t.Fatalf("peers 0 and %d differ after repair\n%s\n%s", p, describe(m.peers[0]), describe(m.peers[p]))
			}
		}
	})
}

// TestGuardedMergeAllOrNothing: a guarded delta merged into a state gives
// the plain join when the guard is met and changes nothing when it is not
// (its registers wait with it: taken without their entry they would show
// a reader what a peer whose version covers this one may lack).
func TestGuardedMergeAllOrNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genState().Draw(t, "state")
		d := genDelta().Draw(t, "delta")
		if d.IsDestroyed() {
			return
		}
		ts := genTimestamp().Draw(t, "ts")
		k, f := VersionField(ts)
		d.Fields = d.Fields.With(k, f)
		d.Guard = &Guard{Need: genVersion().Draw(t, "guard")}
		full := s.Clone()
		plain := *d
		plain.Guard = nil
		mustMerge(t, full, &plain)
		got := s.Clone()
		ch := mustMerge(t, got, d)
		met := s.Version().Covers(d.Guard.Need)
		want := s.Clone()
		if met || s.IsDestroyed() {
			want = full
		}
		if !got.Equal(want) {
			t.Fatalf("guard met %v: got %s want %s", met, describe(got), describe(want))
		}
		if ch.Dropped == met && !s.IsDestroyed() {
			t.Fatalf("guard met %v but Dropped %v", met, ch.Dropped)
		}
		if ch.Dropped && !ch.Empty() {
			t.Fatalf("a dropped delta changed %+v", ch)
		}
	})
}

func TestGuardedBatchWire(t *testing.T) {
	l := DefaultLimits()
	ts := NewTimestamp(genBase.UnixMilli(), 0, 7)
	a := Create("a", ts, genBase.Add(time.Hour), time.Hour)
	whole := a.Clone()
	whole.Guard = &Guard{}
	change := a.Set("k", []byte("v"), ts)
	change.Guard = &Guard{Need: Version{{Node: 3, Time: 5}, {Node: 7, Time: 9}}}
	change.ID = "b"
	plain := a.Set("k", []byte("v"), ts)
	plain.ID = "c"
	b := NewBatch(whole, change, plain)
	data, err := MarshalBatch(b, l)
	if err != nil {
		t.Fatal(err)
	}
	if data[1] != kindGuarded {
		t.Fatalf("a batch with guards encodes as kind %q", data[1])
	}
	got, err := UnmarshalBatch(data, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range b.Sessions() {
		if g := got.Get(want.ID); g == nil || !g.Equal(want) {
			t.Fatalf("%s: got %s want %s", want.ID, describe(g), describe(want))
		}
	}
	if g := got.Get("a").Guard; g == nil || len(g.Need) != 0 {
		t.Fatalf("an empty guard came back as %+v", g)
	}
	if got.Get("c").Guard != nil {
		t.Fatalf("an unguarded delta came back guarded")
	}
	// Without guards, the old encoding, byte for byte.
	old, err := MarshalBatch(NewBatch(plain), l)
	if err != nil || old[1] != kindBatch {
		t.Fatalf("a batch without guards: kind %q, %v", old[1], err)
	}
	if _, err := MarshalSession(change, l); err == nil {
		t.Fatalf("MarshalSession stored a guard")
	}
	bad := change.Clone()
	bad.Guard = &Guard{Need: Version{{Node: 7, Time: 9}, {Node: 3, Time: 5}}}
	if _, err := MarshalBatch(NewBatch(bad), l); err == nil {
		t.Fatalf("a guard out of order encoded")
	}
	// A guarded batch whose guards are all nil is not canonical.
	nilGuards := append([]byte{FormatVersion, kindGuarded, 0x92}, old[2:]...)
	nilGuards = append(nilGuards, 0x91, 0xc0)
	if _, err := UnmarshalBatch(nilGuards, l); err == nil {
		t.Fatalf("a guarded batch without a guard decoded")
	}
}

// TestSuccessiveWritesJoinUnderFirstGuard: two change-only writes of one
// writer joined in a batch need only the first one's guard.
func TestSuccessiveWritesJoinUnderFirstGuard(t *testing.T) {
	t0 := NewTimestamp(genBase.UnixMilli(), 0, 1)
	s := Create(genID, t0, genBase.Add(time.Hour), time.Hour)
	k, f := VersionField(t0)
	s.Fields = s.Fields.With(k, f)
	receiver := s.Clone()
	write := func(ts Timestamp, key string) *Session {
		d := s.Set(key, []byte(key), ts)
		k, f := VersionField(ts)
		d.Fields = d.Fields.With(k, f)
		d.Guard = &Guard{Need: s.Version()}
		mustMerge(t, s, d)
		return d
	}
	d1 := write(NewTimestamp(genBase.UnixMilli()+1, 0, 1), "x")
	d2 := write(NewTimestamp(genBase.UnixMilli()+2, 0, 1), "y")
	joined := NewBatch(d1, d2).Get(genID)
	if !joined.Guard.Need.Equal(d1.Guard.Need) {
		t.Fatalf("joined guard %v, want the first write's %v", joined.Guard.Need, d1.Guard.Need)
	}
	if ch := mustMerge(t, receiver, joined); ch.Dropped {
		t.Fatalf("a receiver holding the first guard dropped the joined entries")
	}
	if !receiver.Version().Equal(s.Version()) {
		t.Fatalf("receiver version %v, writer %v", receiver.Version(), s.Version())
	}
}
