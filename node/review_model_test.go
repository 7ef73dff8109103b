package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// versionModel drives Cores (coreRun's shape) through random histories of
// versioned and unversioned writes, large sessions, destroys, message loss,
// duplication and reordering, partitions, anti-entropy, gap fetches and
// flushes, and checks after every step the claim versions rest on: a peer
// whose copy holds version entry (w, t) holds every register w held once
// its write stamped t was stored.
type versionModel struct {
	r     *coreRun
	rng   *rand.Rand
	ids   []string
	held  map[string]map[crdt.VersionEntry]crdt.Fields // by session
	log   []string
	stats map[string]int
	race  bool
}

func (m *versionModel) step(what string, args ...any) {
	m.log = append(m.log, fmt.Sprintf("%d ", m.r.now.UnixMilli())+fmt.Sprintf(what, args...))
	if len(m.log) > 40 {
		m.log = m.log[1:]
	}
}

func (m *versionModel) get(p PeerID, id string) *crdt.Session {
	s, err := m.r.cores[p].store.Get(id)
	if errors.Is(err, persist.ErrNotFound) {
		return nil
	}
	if err != nil {
		m.r.t.Fatal(err)
	}
	return s
}

// collect carries out a core's work as Node does, answering fetches as
// Node.answerFetch does.
func (m *versionModel) deliver(e envelope) {
	c := m.r.cores[e.to]
	var err error
	if e.gossip {
		err = c.ReceiveGossip(m.r.now, e.from, e.data)
	} else if id, ok, ferr := FetchRequest(e.data); ok {
		if ferr != nil {
			m.r.t.Fatal(ferr)
		}
		c.AnswerFetch(e.from, id, m.get(e.to, id))
	} else {
		err = c.ReceiveDirect(m.r.now, e.from, e.data)
	}
	if err != nil {
		m.r.t.Fatalf("%s from %s: %v", e.to, e.from, err)
	}
	m.r.collect(e.to)
}

func (m *versionModel) write(p PeerID, id string) {
	c := m.r.cores[p]
	s := m.get(p, id)
	if _, ok := c.Visible(s, m.r.now); !ok {
		return
	}
	key := "k" + strconv.Itoa(m.rng.IntN(4))
	val := strconv.Itoa(m.rng.IntN(1000))
	if m.rng.IntN(6) == 0 {
		val = strings.Repeat(val, 1500) // past wholeStateBytes
	}
	op := LocalOp{Kind: OpUpdate, ID: id, Stored: s, Set: map[string][]byte{key: []byte(val)}}
	versioned := true
	switch m.rng.IntN(10) {
	case 0:
		op = LocalOp{Kind: OpSave, ID: id, Stored: s, Set: op.Set} // unversioned
		versioned = false
	case 1:
		op.Set, op.Remove = nil, []string{key}
	case 2:
		// The Redis front's EXPIRE: the idle timeout set (up or down)
		// and an access, no version.
		op = LocalOp{Kind: OpSave, ID: id, Stored: s, IdleTimeout: time.Duration(1+m.rng.IntN(60)) * time.Minute, Touch: true}
		versioned = false
	case 3:
		// A versioned Save that also sets the idle timeout.
		op = LocalOp{Kind: OpSave, ID: id, Stored: s, Set: op.Set, Versioned: true,
			IdleTimeout: time.Duration(1+m.rng.IntN(60)) * time.Minute, Touch: true}
	}
	if m.race && m.rng.IntN(3) == 0 {
		// A remote delta merges between the read and the write, as in
		// Node, which serialises a session's local writes only.
		for i, e := range m.r.queue {
			if e.to == p && m.r.linked(e.from, e.to) {
				m.r.queue = slices.Delete(m.r.queue, i, i+1)
				m.step("raced: deliver %s>%s gossip=%v kind=%c", e.from, e.to, e.gossip, e.data[0])
				m.deliver(e)
				break
			}
		}
	}
	m.stats["write"]++
	if !s.Covered() {
		m.stats["whole"]++
	}
	m.step("%s writes %s %s versioned=%v whole=%v", p, id, key, versioned, !s.Covered())
	if _, err := c.Local(m.r.now, op); err != nil {
		if errors.Is(err, ErrInvalid) || errors.Is(err, crdt.ErrTooLarge) {
			return
		}
		m.r.t.Fatal(err)
	}
	acks := m.collect(p)
	if !versioned || len(acks) != 1 || acks[0].Err != nil {
		return
	}
	// The entry stands for what the write was decided on, plus the write:
	// the read copy joined with the delta (a remote delta that merged in
	// between is stood for by its own entries, or by none).
	d := acks[0].Deltas[0]
	promised := s.Clone()
	if _, err := promised.Merge(&crdt.Session{ID: d.ID, Fields: d.Fields}); err != nil {
		m.r.t.Fatal(err)
	}
	n := m.nodeOf(p)
	e := crdt.VersionEntry{Node: n, Time: d.Version().Get(n)}
	m.held[id][e] = promised.Fields
	if after := m.get(p, id); !m.race && !after.IsDestroyed() && !after.Fields.Equal(promised.Fields) {
		m.r.t.Fatalf("the writer's copy is not what its write was decided on plus the write")
	}
}

// report logs what a run did, and fails a run that exercised nothing.
func (m *versionModel) report() {
	writes, whole, delivered := m.stats["write"], m.stats["whole"], m.stats["deliver"]
	m.r.t.Logf("%d writes (%d whole), %d deliveries, %d entries", writes, whole, delivered, m.entries())
	if writes == 0 || delivered == 0 {
		m.r.t.Fatalf("the run exercised nothing")
	}
}

func (m *versionModel) entries() int {
	n := 0
	for _, h := range m.held {
		n += len(h)
	}
	return n
}

// collect is coreRun.collect that also returns the acknowledgements.
func (m *versionModel) collect(from PeerID) []Ack {
	c := m.r.cores[from]
	var acks []Ack
	rd := c.Ready()
	for len(rd.Storage) > 0 {
		m.r.send(from, rd)
		acks = append(acks, rd.Acks...)
		for _, op := range rd.Storage {
			c.Stored(m.r.now, op.Run(context.Background(), c.store))
		}
		rd = c.Ready()
	}
	m.r.send(from, rd)
	return append(acks, rd.Acks...)
}

// nodeOf is the crdt node id newCoreRun gives peer p.
func (m *versionModel) nodeOf(p PeerID) crdt.NodeID {
	return crdt.NodeID(slices.Index(m.r.ids, p) + 1)
}

func (m *versionModel) check() {
	for _, p := range m.r.ids {
		for _, id := range m.ids {
			s := m.get(p, id)
			if s == nil {
				continue
			}
			for _, e := range s.Version() {
				want, ok := m.held[id][e]
				if !ok {
					m.r.t.Fatalf("%s holds entry %v of %s that no write issued\n%s", p, e, id, strings.Join(m.log, "\n"))
				}
				for k, f := range want.All() {
					if strings.HasPrefix(k, crdt.VersionKeyPrefix) {
						continue
					}
					if got, ok := s.Fields.Get(k); !ok || got.Compare(f) < 0 {
						m.r.t.Fatalf("%s holds entry %v of %s but not %q@%v that its writer held (has %v)\nrecent steps:\n%s",
							p, e, id, k, f.TS, got.TS, strings.Join(m.log, "\n"))
					}
				}
			}
		}
	}
}

func runVersionModel(t *testing.T, seed uint64, steps int, race bool) {
	r := newCoreRun(t, 3+int(seed%2), seed)
	m := &versionModel{r: r, rng: rand.New(rand.NewPCG(seed, 99)), held: map[string]map[crdt.VersionEntry]crdt.Fields{}, stats: map[string]int{}, race: race}
	create := func(id string) {
		p := r.ids[m.rng.IntN(len(r.ids))]
		c := r.cores[p]
		if _, err := c.Local(r.now, LocalOp{Kind: OpCreate, ID: id, Set: map[string][]byte{"k0": []byte("0")},
			Idle: 30 * time.Minute, Lifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
		r.collect(p)
		s := m.get(p, id)
		n := m.nodeOf(p)
		m.held[id] = map[crdt.VersionEntry]crdt.Fields{{Node: n, Time: s.Version().Get(n)}: s.Fields}
		m.ids = append(m.ids, id)
	}
	create("s0")
	create("s1")
	for range steps {
		switch x := m.rng.IntN(100); {
		case x < 30:
			m.write(r.ids[m.rng.IntN(len(r.ids))], m.ids[m.rng.IntN(len(m.ids))])
		case x < 31:
			p, id := r.ids[m.rng.IntN(len(r.ids))], m.ids[m.rng.IntN(len(m.ids))]
			if s := m.get(p, id); s != nil {
				if _, ok := r.cores[p].Visible(s, r.now); ok {
					m.step("%s destroys %s", p, id)
					if _, err := r.cores[p].Local(r.now, LocalOp{Kind: OpDestroy, ID: id, Stored: s}); err != nil {
						t.Fatal(err)
					}
					r.collect(p)
					create(fmt.Sprintf("s%d", len(m.ids)))
				}
			}
		case x < 33:
			p, id := r.ids[m.rng.IntN(len(r.ids))], m.ids[m.rng.IntN(len(m.ids))]
			if s := m.get(p, id); s != nil {
				if _, ok := r.cores[p].Visible(s, r.now); ok {
					nid := fmt.Sprintf("s%d", len(m.ids))
					m.step("%s renews %s as %s", p, id, nid)
					if _, err := r.cores[p].Local(r.now, LocalOp{Kind: OpRenew, ID: id, Stored: s, NewID: nid}); err != nil {
						t.Fatal(err)
					}
					r.collect(p)
					ns := m.get(p, nid)
					n := m.nodeOf(p)
					m.held[nid] = map[crdt.VersionEntry]crdt.Fields{{Node: n, Time: ns.Version().Get(n)}: ns.Fields}
					m.ids = append(m.ids, nid)
				}
			}
		case x < 75:
			if len(r.queue) == 0 {
				continue
			}
			i := m.rng.IntN(len(r.queue))
			e := r.queue[i]
			switch y := m.rng.IntN(10); {
			case y == 0: // lost
				r.queue = slices.Delete(r.queue, i, i+1)
				m.step("lost %s>%s gossip=%v", e.from, e.to, e.gossip)
				continue
			case y == 1: // duplicated: stays queued
			default:
				r.queue = slices.Delete(r.queue, i, i+1)
			}
			if !r.linked(e.from, e.to) {
				continue
			}
			m.stats["deliver"]++
			m.step("deliver %s>%s gossip=%v kind=%c", e.from, e.to, e.gossip, e.data[0])
			m.deliver(e)
		case x < 95:
			r.now = r.now.Add(time.Duration(1+m.rng.IntN(400)) * time.Millisecond)
			for _, id := range r.ids {
				if !r.cores[id].Next().After(r.now) {
					r.cores[id].Tick(r.now)
					r.collect(id)
				}
			}
		default:
			p := r.ids[m.rng.IntN(len(r.ids))]
			side := 1 - r.cut[p]
			m.step("%s to side %d", p, side)
			for _, q := range r.ids {
				if q == p {
					continue
				}
				was := r.linked(p, q)
				r.cut[p] = side
				now := r.linked(p, q)
				r.cut[p] = 1 - side
				if was && !now {
					r.cores[p].PeerDown(r.now, q)
					r.cores[q].PeerDown(r.now, p)
				}
			}
			r.cut[p] = side
			for _, q := range r.ids {
				if q != p && r.linked(p, q) {
					r.cores[p].PeerUp(r.now, q)
					r.cores[q].PeerUp(r.now, p)
					r.collect(p)
					r.collect(q)
				}
			}
		}
		m.check()
	}
	// Heal, deliver everything, and let anti-entropy finish: every peer
	// ends with the same state (fields, idle timeout registers, entries).
	for _, p := range r.ids {
		r.cut[p] = 0
	}
	for _, p := range r.ids {
		for _, q := range r.ids {
			if p != q {
				r.cores[p].PeerUp(r.now, q)
				r.collect(p)
			}
		}
	}
	for i := 0; !r.converged() || len(r.queue) > 0; i++ {
		if i == 200 {
			t.Fatalf("no convergence after healing")
		}
		for len(r.queue) > 0 {
			e := r.queue[0]
			r.queue = r.queue[1:]
			m.deliver(e)
		}
		r.now = r.now.Add(500 * time.Millisecond)
		for _, id := range r.ids {
			if !r.cores[id].Next().After(r.now) {
				r.cores[id].Tick(r.now)
				r.collect(id)
			}
		}
		m.check()
	}
	for _, id := range m.ids {
		first := m.get(r.ids[0], id)
		for _, p := range r.ids[1:] {
			if s := m.get(p, id); (s == nil) != (first == nil) || s != nil && !s.Equal(first) {
				t.Fatalf("%s differs on %s after convergence", p, id)
			}
		}
	}
	m.report()
}

// TestVersionEntriesHoldWhatTheirWriterHeld runs the version model over
// several seeds, a third of them with remote deltas merging between a
// write's read and its store; SESSIONMESH_VERSION_SEEDS=N runs N.
func TestVersionEntriesHoldWhatTheirWriterHeld(t *testing.T) {
	seeds := 12
	if v := os.Getenv("SESSIONMESH_VERSION_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SESSIONMESH_VERSION_SEEDS=%q: want a positive count", v)
		}
		seeds = n
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runVersionModel(t, seed, 400, seed%3 == 1) })
	}
}
