package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// hookStore is a real in-memory store whose Apply calls are recorded and
// can be failed or held by the test.
type hookStore struct {
	*persist.Store
	mu      sync.Mutex
	applies []*crdt.Batch
	// before runs ahead of each Apply: an error fails the Apply without
	// writing anything, as a disk error would.
	before func(b *crdt.Batch) error
}

func (s *hookStore) Apply(b *crdt.Batch, now time.Time) (persist.Result, error) {
	s.mu.Lock()
	s.applies = append(s.applies, crdt.NewBatch(b.Sessions()...))
	before := s.before
	s.mu.Unlock()
	if before != nil {
		if err := before(b); err != nil {
			return persist.Result{}, err
		}
	}
	return s.Store.Apply(b, now)
}

func (s *hookStore) setBefore(f func(b *crdt.Batch) error) {
	s.mu.Lock()
	s.before = f
	s.mu.Unlock()
}

// take returns and forgets the batches applied so far.
func (s *hookStore) take() []*crdt.Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.applies
	s.applies = nil
	return out
}

// live counts the sessions a reader could see at now.
func (s *hookStore) live(t *testing.T, now time.Time) int {
	t.Helper()
	all := make([]int, persist.Buckets)
	for i := range all {
		all[i] = i
	}
	n := 0
	err := s.Buckets(context.Background(), all, func(x *crdt.Session) error {
		if x.Visible(now) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hookCluster starts n nodes over hook stores on one in-memory network.
func hookCluster(t *testing.T, n int, tweak func(*Config)) ([]*Node, []*hookStore) {
	t.Helper()
	net := newMemNet()
	var nodes []*Node
	var stores []*hookStore
	for i := range n {
		cfg := testConfig()
		cfg.SyncInterval = time.Hour // gossip only: anti-entropy would hide a lost batch
		if tweak != nil {
			tweak(&cfg)
		}
		cfg.Dial = net.dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		o := persist.InMemoryOptions()
		o.Limits, o.MaxDrift, o.GCInterval = cfg.Limits, cfg.MaxDrift, 0
		st, err := persist.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		hs := &hookStore{Store: st}
		nd, err := New(context.Background(), cfg, hs, st.Close)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nd.Close(context.Background()) })
		nodes = append(nodes, nd)
		stores = append(stores, hs)
	}
	net.connectAll()
	// The rounds the connections started carry whatever a test writes
	// meanwhile, as extra applies: let them end first.
	waitFirstRounds(t, &cluster{net: net, nodes: nodes})
	return nodes, stores
}

// renewOutcome checks the invariant of Renew on one node after a call that
// returned fresh and err: either it failed and the old token works with no
// other session, or it succeeded, the old token is dead and the new one
// works. Never both alive, never neither.
func renewOutcome(t *testing.T, n *Node, st *hookStore, old, fresh string, err error) {
	t.Helper()
	ctx := context.Background()
	_, oldErr := n.Get(ctx, old)
	live := st.live(t, n.Now())
	if err != nil {
		if oldErr != nil || live != 1 {
			t.Fatalf("Renew failed (%v) but the old token gives %v and %d sessions are live: want the old one alone", err, oldErr, live)
		}
		return
	}
	if _, gerr := n.Get(ctx, fresh); gerr != nil {
		t.Fatalf("Renew succeeded but the new token gives %v", gerr)
	}
	if !errors.Is(oldErr, ErrNotFound) || live != 1 {
		t.Fatalf("Renew succeeded but the old token gives %v and %d sessions are live: want the new one alone", oldErr, live)
	}
}

func TestRenewIsOneWrite(t *testing.T) {
	nodes, stores := hookCluster(t, 2, nil)
	n, st, remote := nodes[0], stores[0], stores[1]
	ctx := context.Background()
	old, err := n.Create(ctx, WithFields(map[string][]byte{"user": []byte("alice")}))
	if err != nil {
		t.Fatal(err)
	}
	oldID, _ := SessionID(old)
	eventually(t, 5*time.Second, "the session on the remote peer", func() bool {
		_, err := remote.Get(oldID)
		return err == nil
	})
	st.take()
	remote.take()

	fresh, err := n.Renew(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	newID, _ := SessionID(fresh)
	applies := st.take()
	if len(applies) != 1 {
		t.Fatalf("Renew made %d writes, want 1", len(applies))
	}
	checkRenewBatch(t, applies[0], oldID, newID)
	renewOutcome(t, n, st, old, fresh, nil)

	// The remote peer applies both from one gossip batch.
	eventually(t, 5*time.Second, "the renewal on the remote peer", func() bool {
		s, err := remote.Get(oldID)
		return err == nil && s.IsDestroyed()
	})
	applies = remote.take()
	if len(applies) != 1 {
		t.Fatalf("the remote peer applied the renewal in %d writes, want 1", len(applies))
	}
	checkRenewBatch(t, applies[0], oldID, newID)
	if got, err := nodes[1].Get(ctx, fresh); err != nil || string(must(got.Get("user"))) != "alice" {
		t.Fatalf("new session on the remote peer: %v", err)
	}
}

func must(v []byte, _ bool) []byte { return v }

// checkRenewBatch checks that b creates newID and destroys oldID.
func checkRenewBatch(t *testing.T, b *crdt.Batch, oldID, newID string) {
	t.Helper()
	if b.Len() != 2 {
		t.Fatalf("batch of %d sessions, want the new one and the old one's tombstone", b.Len())
	}
	if d := b.Get(oldID); d == nil || !d.IsDestroyed() {
		t.Fatalf("batch does not destroy the old session: %+v", d)
	}
	if d := b.Get(newID); d == nil || d.Created.IsZero() || d.IsDestroyed() {
		t.Fatalf("batch does not create the new session: %+v", d)
	}
}

// A renewal goes out in one gossip batch even when the deltas pending
// before it fill batches: split never separates its two sessions.
func TestRenewTravelsInOneBatch(t *testing.T) {
	nodes, stores := hookCluster(t, 2, func(c *Config) {
		c.FlushBytes = 4 << 10
		c.FlushDelay = time.Hour // only size flushes, and the renewal's own
	})
	n, remote := nodes[0], stores[1]
	ctx := context.Background()
	big := make([]byte, 1500)
	old, err := n.Create(ctx, WithFields(map[string][]byte{"a": big}))
	if err != nil {
		t.Fatal(err)
	}
	oldID, _ := SessionID(old)
	// Pending deltas, under the flush size: the renewal's new session
	// takes them over it.
	if _, err := n.Create(ctx, WithFields(map[string][]byte{"b": big})); err != nil {
		t.Fatal(err)
	}
	fresh, err := n.Renew(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	newID, _ := SessionID(fresh)
	eventually(t, 5*time.Second, "the renewal on the remote peer", func() bool {
		s, err := remote.Get(oldID)
		return err == nil && s.IsDestroyed()
	})
	found := false
	for _, b := range remote.take() {
		if b.Get(newID) != nil || (b.Get(oldID) != nil && b.Get(oldID).IsDestroyed()) {
			if b.Get(newID) == nil || b.Get(oldID) == nil || !b.Get(oldID).IsDestroyed() {
				t.Fatalf("the renewal was split across batches: one holds %d sessions, new %v, old %v", b.Len(), b.Get(newID) != nil, b.Get(oldID) != nil)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("the remote peer never applied the renewal")
	}
}

// A write that fails takes neither half of the renewal with it: the old
// token stays valid and no new session exists, on this peer or another.
func TestRenewFailedWriteLeavesOldSession(t *testing.T) {
	nodes, stores := hookCluster(t, 2, nil)
	n, st := nodes[0], stores[0]
	ctx := context.Background()
	old, err := n.Create(ctx, WithFields(map[string][]byte{"user": []byte("alice")}))
	if err != nil {
		t.Fatal(err)
	}
	diskErr := errors.New("injected: no space left on device")
	// Fail the write that destroys: a renewal written as two writes
	// (create, then destroy) would keep the new session of the first.
	st.setBefore(func(b *crdt.Batch) error {
		for _, d := range b.Sessions() {
			if d.IsDestroyed() {
				return diskErr
			}
		}
		return nil
	})
	fresh, err := n.Renew(ctx, old)
	if !errors.Is(err, diskErr) {
		t.Fatalf("Renew with a failing write: %q, %v; want the disk error", fresh, err)
	}
	renewOutcome(t, n, st, old, fresh, err)

	// Fail every write after the first: a renewal written as two writes
	// would leave both sessions alive.
	var calls int
	st.setBefore(func(*crdt.Batch) error {
		calls++
		if calls > 1 {
			return diskErr
		}
		return nil
	})
	fresh, err = n.Renew(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	renewOutcome(t, n, st, old, fresh, err)
	st.setBefore(nil)

	// The other peer saw neither the failed attempt nor half of anything.
	remote := stores[1]
	eventually(t, 5*time.Second, "the renewal on the remote peer", func() bool {
		return remote.live(t, n.Now()) == 1 && n.Store().Digests().Root == remote.Digests().Root
	})
	if _, err := nodes[1].Get(ctx, fresh); err != nil {
		t.Fatalf("new session on the remote peer: %v", err)
	}
}

// A context that ends before the write leaves the old session alone; one
// that ends while the write is in flight does not undo it, and Renew
// returns the new token since the old no longer works.
func TestRenewCancelledContext(t *testing.T) {
	nodes, stores := hookCluster(t, 1, nil)
	n, st := nodes[0], stores[0]
	old, err := n.Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fresh, err := n.Renew(ctx, old)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Renew with a cancelled context: %q, %v", fresh, err)
	}
	renewOutcome(t, n, st, old, fresh, err)

	// Cancelled while the write is in flight.
	entered, release := make(chan struct{}), make(chan struct{})
	st.setBefore(func(*crdt.Batch) error {
		close(entered)
		<-release
		return nil
	})
	ctx, cancel = context.WithCancel(context.Background())
	type result struct {
		token string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := n.Renew(ctx, old)
		done <- result{tok, err}
	}()
	<-entered
	cancel()
	close(release)
	r := <-done
	st.setBefore(nil)
	if r.err != nil {
		t.Fatalf("Renew whose context ended during the write: %v; the write was made, want the new token", r.err)
	}
	renewOutcome(t, n, st, old, r.token, r.err)

	// Cancellations at every point of many renewals keep the invariant.
	tok := r.token
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Duration(i%20) * 10 * time.Microsecond)
			cancel()
		}()
		fresh, err := n.Renew(ctx, tok)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		renewOutcome(t, n, st, tok, fresh, err)
		if err == nil {
			tok = fresh
		}
	}
}

// A change of several sessions goes out in one gossip batch, after what
// was pending; one too large for a message goes in parts rather than not
// at all.
func TestLocalChangeBatches(t *testing.T) {
	cfg := testConfig()
	st, err := persist.Open(persist.InMemoryOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now()
	c := NewCore(cfg, "self", st, 1, 1, now)
	clk := crdt.NewClock(1, cfg.MaxDrift)
	session := func(id string, size int) *crdt.Session {
		d := crdt.Create(id, clk.Now(now), now.Add(time.Hour), time.Hour)
		for i := 0; size > 0; i++ {
			n := min(size, cfg.Limits.MaxValueBytes-64)
			d.Fields = d.Fields.With(fmt.Sprintf("f%d", i), crdt.Field{Value: strings.Repeat("v", n), TS: clk.Now(now)})
			size -= n
		}
		return d
	}
	sent := func(r Ready) [][]string {
		var out [][]string
		for _, data := range r.Broadcasts {
			b, err := crdt.UnmarshalBatch(data, cfg.Limits)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range b.Sessions() {
				ids = append(ids, s.ID)
			}
			out = append(out, ids)
		}
		return out
	}

	c.LocalDelta(now, session("pending", 10))
	c.LocalDelta(now, session("a", 100), session("b", 100))
	got := sent(c.Ready())
	if len(got) != 2 || fmt.Sprint(got[0]) != "[pending]" || fmt.Sprint(got[1]) != "[a b]" {
		t.Fatalf("broadcasts %v, want [pending] then [a b]", got)
	}

	big := cfg.Limits.MaxSessionBytes - 16<<10
	c.LocalDelta(now, session("x", big), session("y", big), session("z", big))
	got = sent(c.Ready())
	seen := map[string]bool{}
	for _, ids := range got {
		for _, id := range ids {
			seen[id] = true
		}
	}
	if len(got) < 2 || len(seen) != 3 {
		t.Fatalf("broadcasts %v, want x, y and z in several messages", got)
	}
}
