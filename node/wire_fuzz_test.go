package node

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
)

// FuzzReceiveDirect feeds arbitrary anti-entropy messages to a core in
// the middle of rounds both ways: it may refuse them, never panic, and
// every storage read or write it asks for must run.
func FuzzReceiveDirect(f *testing.F) {
	seeds := []struct {
		kind byte
		v    any
	}{
		{kindRoot, &rootMsg{Round: 1, Root: 7}},
		{kindAgree, &agreeMsg{Round: 1}},
		{kindDigests, &digestsMsg{Round: 1, Buckets: make([]byte, 8*persist.Buckets)}},
		{kindPlan, &planMsg{Round: 1, Full: newBucketSet(), Summary: newBucketSet()}},
		{kindEntries, &entriesMsg{Round: 1, Seq: 1, Payload: payloadSummary, Buckets: []int{3, 9}, Batch: make([]byte, 32)}},
		{kindEntries, &entriesMsg{Round: 1, FromInitiator: true, Seq: 1, Batch: []byte{0x92}}},
		{kindCredit, &creditMsg{Round: 1, Seq: 1, Answers: 3}},
		{kindFin, &finMsg{Round: 1, Total: 2}},
		{kindAbort, &abortMsg{Round: 1, Reason: "x"}},
		{kindFetched, &fetchMsg{ID: "x", Batch: []byte{1, 'b', 0x90}}},
		{kindFetched, &fetchMsg{ID: "x"}},
	}
	for _, s := range seeds {
		data, err := encodeMsg(s.kind, s.v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	o := persist.InMemoryOptions()
	o.GCInterval = 0
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := persist.Open(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	cfg := DefaultConfig()
	cfg.Logger = o.Logger
	cfg.SyncInterval = 1000 * time.Hour // no periodic round in the way
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewCore(cfg, "self", st, 1, 1, now)
		c.PeerUp(now, "peer") // an initiated round 1 with peer
		if err := c.ReceiveDirect(now, "peer", mustEncode(t, kindRoot, &rootMsg{Round: 1, Root: 42})); err != nil {
			t.Fatal(err) // a responder round 1 with peer too
		}
		_ = c.ReceiveDirect(now, "peer", data)
		for r := c.Ready(); len(r.Storage) > 0; r = c.Ready() {
			for _, op := range r.Storage {
				c.Stored(now, op.Run(context.Background(), st))
			}
		}
		c.Tick(now.Add(time.Hour)) // every round times out
		if len(c.rounds) != 0 {
			t.Fatalf("%d rounds left after their timeout", len(c.rounds))
		}
	})
}

func mustEncode(t *testing.T, kind byte, v any) []byte {
	data, err := encodeMsg(kind, v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
