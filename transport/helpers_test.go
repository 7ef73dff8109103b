package transport

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// testLogger logs to stderr when TRANSPORT_TEST_LOG is set (to debug,
// info, warn or error) and discards otherwise. It does not use t.Log:
// gossipsub's goroutines may log after a test has finished.
func testLogger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("TRANSPORT_TEST_LOG"))); err != nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = testLogger()
	return cfg
}

type received struct {
	from peer.ID
	data string
}

// recorder is a Handler that remembers everything it is given.
type recorder struct {
	mu     sync.Mutex
	gossip []received
	direct []received
	events []peerEvent
}

func (r *recorder) HandleGossip(from peer.ID, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gossip = append(r.gossip, received{from, string(data)})
}

func (r *recorder) HandleDirect(from peer.ID, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.direct = append(r.direct, received{from, string(data)})
}

func (r *recorder) PeerUp(id peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, peerEvent{id: id, up: true})
}

func (r *recorder) PeerDown(id peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, peerEvent{id: id, up: false})
}

// gossipCount counts deliveries of data from author.
func (r *recorder) gossipCount(from peer.ID, data string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.gossip {
		if m.from == from && m.data == data {
			n++
		}
	}
	return n
}

func (r *recorder) gossipWithPrefix(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.gossip {
		if strings.HasPrefix(m.data, prefix) {
			out = append(out, m.data)
		}
	}
	return out
}

func (r *recorder) gossipLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.gossip)
}

func (r *recorder) directFrom(from peer.ID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.direct {
		if m.from == from {
			out = append(out, m.data)
		}
	}
	return out
}

// ups and downs count PeerUp and PeerDown calls for id.
func (r *recorder) ups(id peer.ID) (ups, downs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.id != id {
			continue
		}
		if e.up {
			ups++
		} else {
			downs++
		}
	}
	return ups, downs
}

// isUp reports whether the last event for id was PeerUp.
func (r *recorder) isUp(id peer.ID) bool {
	u, d := r.ups(id)
	return u > d
}

// startTransport starts a transport closed at the end of the test.
func startTransport(tb testing.TB, cfg Config, h Handler) *Transport {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := New(ctx, cfg, h)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// addrsOf returns tr's full addresses as strings, for Config.Bootstrap.
func addrsOf(tr *Transport) []string {
	var out []string
	for _, a := range tr.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gossipReady reports whether tr has every connected peer on the topic
// and in its forwarding mesh.
func gossipReady(tr *Transport) bool {
	peers := tr.Peers()
	topic, mesh := tr.GossipPeers(), tr.MeshPeers()
	for _, p := range peers {
		if !slices.Contains(topic, p) || !slices.Contains(mesh, p) {
			return false
		}
	}
	return true
}

// waitConnected waits until each transport has exactly the expected peers
// and gossip is ready on all of them.
func waitMesh(tb testing.TB, links map[*Transport][]*Transport) {
	tb.Helper()
	for tr, want := range links {
		ids := make([]peer.ID, 0, len(want))
		for _, w := range want {
			ids = append(ids, w.ID())
		}
		slices.Sort(ids)
		waitFor(tb, 10*time.Second, "peers of "+tr.ID().ShortString(), func() bool {
			return slices.Equal(tr.Peers(), ids)
		})
	}
	for tr := range links {
		waitFor(tb, 10*time.Second, "gossip mesh of "+tr.ID().ShortString(), func() bool {
			return gossipReady(tr)
		})
	}
}

// identity creates a data dir holding a fresh identity and returns it with
// the peer id.
func identity(tb testing.TB) (string, peer.ID) {
	tb.Helper()
	dir := tb.TempDir()
	k, err := loadIdentity(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return dir, id
}
