package transport

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// decodedRecorder records what HandleDecodedGossip receives.
type decodedRecorder struct {
	recorder
	mu      sync.Mutex
	decoded []any
}

func (r *decodedRecorder) HandleDecodedGossip(_ peer.ID, _ []byte, v any) {
	r.mu.Lock()
	r.decoded = append(r.decoded, v)
	r.mu.Unlock()
}

func (r *decodedRecorder) got() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.decoded...)
}

// What DecodeGossip makes of a message in the validator reaches a
// DecodedGossipHandler with it, decoded once; what it rejects reaches
// nobody.
func TestDecodeGossipOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	decodes := 0
	decode := func(_ peer.ID, data []byte) (any, error) {
		mu.Lock()
		decodes++
		mu.Unlock()
		if !strings.HasPrefix(string(data), "ok:") {
			return nil, errors.New("not ok")
		}
		return strings.ToUpper(string(data)), nil
	}
	ra := &decodedRecorder{}
	a := startTransport(t, testConfig(), &recorder{})
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	cfg.DecodeGossip = decode
	b := startTransport(t, cfg, ra)
	waitMesh(t, map[*Transport][]*Transport{a: {b}, b: {a}})
	for _, m := range []string{"bad", "ok:one"} {
		if err := a.Broadcast(context.Background(), []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the decoded message", func() bool { return len(ra.got()) == 1 })
	if got := ra.got(); got[0] != "OK:ONE" || ra.gossipLen() != 0 {
		t.Fatalf("decoded %v, plain deliveries %d", got, ra.gossipLen())
	}
	mu.Lock()
	defer mu.Unlock()
	if decodes != 2 {
		t.Fatalf("%d decodes for 2 messages", decodes)
	}
}

// A host's own publications are not decoded: it built them, and the
// decoded value would only sit in pubsub's message cache.
func TestOwnGossipNotDecoded(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	decodes := 0
	decode := func(_ peer.ID, data []byte) (any, error) {
		mu.Lock()
		decodes++
		mu.Unlock()
		return string(data), nil
	}
	ra := &recorder{}
	a := startTransport(t, testConfig(), ra)
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	cfg.DecodeGossip = decode
	b := startTransport(t, cfg, &decodedRecorder{})
	waitMesh(t, map[*Transport][]*Transport{a: {b}, b: {a}})
	for range 3 {
		if err := b.Broadcast(context.Background(), []byte("ok:mine")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the messages at the other host", func() bool { return ra.gossipLen() == 3 })
	mu.Lock()
	defer mu.Unlock()
	if decodes != 0 {
		t.Fatalf("%d decodes of the host's own 3 messages", decodes)
	}
}
