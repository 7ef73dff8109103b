package daemon

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
)

// POST /v1/sync runs a round now and reports what it repaired: sessions
// written into one store behind gossip's back reach the other peer.
func TestSyncEndpoint(t *testing.T) {
	t.Parallel()
	nodes := meshtest.Start(t, 2, func(i int, cfg *node.Config) {
		cfg.SyncInterval = time.Hour // no round but the ones asked for, and the one at connection
	})
	a, b := nodes[0], nodes[1]
	meshtest.Eventually(t, 10*time.Second, "the round at connection", func() bool {
		ps := a.Peers()
		return len(ps) == 1 && !ps[0].LastSync.IsZero()
	})
	h := NewHandler(APIOptions{Node: a})

	// Three sessions only a has: written into its store, not gossiped.
	now := time.Now()
	clock := crdt.NewClock(99, time.Minute)
	batch := crdt.NewBatch()
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("behind-gossip-%d", i)
		ids = append(ids, id)
		batch.Add(crdt.Create(id, clock.Now(now), now.Add(time.Hour), time.Hour))
	}
	if _, err := a.Store().Apply(batch, now); err != nil {
		t.Fatal(err)
	}

	// A round already running with b (one started by b, or at a new
	// connection) is joined rather than doubled, and may have compared
	// digests before the write: the next one repairs.
	var r response
	for range 3 {
		r = do(t, h, request{method: "POST", path: "/v1/sync", body: fmt.Sprintf(`{"peer": %q}`, b.ID())})
		if r.status != 200 {
			t.Fatalf("POST /v1/sync: %d %s", r.status, r.body)
		}
		if decode[syncResponse](t, r).Result != "in_sync" {
			break
		}
	}
	rep := decode[syncResponse](t, r)
	if rep.Peer != string(b.ID()) || rep.Result != "repaired" || rep.SessionsOut < 3 || rep.BytesOut <= 0 || rep.DurationSeconds <= 0 {
		t.Errorf("sync report: %s", r.body)
	}
	for _, id := range ids {
		if _, err := b.Store().Get(id); err != nil {
			t.Errorf("after the round, b lacks %s: %v", id, err)
		}
	}
	// Now in agreement; no body lets the node choose the peer.
	r = do(t, h, request{method: "POST", path: "/v1/sync"})
	if rep := decode[syncResponse](t, r); r.status != 200 || rep.Result != "in_sync" || rep.Peer != string(b.ID()) {
		t.Errorf("second sync: %d %s", r.status, r.body)
	}
	// A peer that is not connected.
	r = do(t, h, request{method: "POST", path: "/v1/sync", body: `{"peer": "12D3KooWAAeDaF9srFLtC5MT4tTjMoCMGTV9dn5ntFRNBdimWDXK"}`})
	if r.status != 409 || r.errorCode(t) != codePeerNotConnected {
		t.Errorf("sync with a stranger: %d %s", r.status, r.body)
	}
	r = do(t, h, request{method: "POST", path: "/v1/sync", body: `{"peer": 1}`})
	if r.status != 400 {
		t.Errorf("sync with a bad body: %d %s", r.status, r.body)
	}
	r = do(t, h, request{method: "GET", path: "/v1/sync"})
	if r.status != 405 {
		t.Errorf("GET /v1/sync: %d %s", r.status, r.body)
	}
}

// A peer without any other has nothing to sync with.
func TestSyncAlone(t *testing.T) {
	t.Parallel()
	h := NewHandler(APIOptions{Node: openNode(t)})
	r := do(t, h, request{method: "POST", path: "/v1/sync"})
	if r.status != 409 || r.errorCode(t) != codePeerNotConnected {
		t.Errorf("sync alone: %d %s", r.status, r.body)
	}
}
