package transport

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Three hosts, b and c bootstrapping to a (a star: b and c are not
// directly connected, so a relays). A broadcast is delivered once to each
// other host and never to its sender.
func TestBroadcastDeliveredOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb, rc := &recorder{}, &recorder{}, &recorder{}
	a := startTransport(t, testConfig(), ra)

	start := time.Now()
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, cfg, rb)
	c := startTransport(t, cfg, rc)
	waitFor(t, 10*time.Second, "PeerUp", func() bool { return rb.isUp(a.ID()) && rc.isUp(a.ID()) })
	upAfter := time.Since(start)
	waitFor(t, 10*time.Second, "subscriptions", func() bool {
		return len(a.GossipPeers()) == 2 && len(b.GossipPeers()) == 2 && len(c.GossipPeers()) == 2
	})
	subAfter := time.Since(start)
	// b and c learn each other from a.
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})
	t.Logf("after New: PeerUp %v, subscriptions known %v, mesh formed %v", upAfter, subAfter, time.Since(start))

	// From a leaf: a receives it directly, c through a.
	if err := b.Broadcast(ctx, []byte("hello from b")); err != nil {
		t.Fatal(err)
	}
	// From the hub.
	if err := a.Broadcast(ctx, []byte("hello from a")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "deliveries", func() bool {
		return ra.gossipCount(b.ID(), "hello from b") > 0 && rc.gossipCount(b.ID(), "hello from b") > 0 &&
			rb.gossipCount(a.ID(), "hello from a") > 0 && rc.gossipCount(a.ID(), "hello from a") > 0
	})
	// Barrier: messages sent after these arrive after any duplicate would.
	for _, tr := range []*Transport{a, b} {
		if err := tr.Broadcast(ctx, []byte("barrier")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "barrier", func() bool {
		return rc.gossipCount(a.ID(), "barrier") == 1 && rc.gossipCount(b.ID(), "barrier") == 1 &&
			ra.gossipCount(b.ID(), "barrier") == 1 && rb.gossipCount(a.ID(), "barrier") == 1
	})
	for name, n := range map[string]int{
		"a got b's":     ra.gossipCount(b.ID(), "hello from b"),
		"c got b's":     rc.gossipCount(b.ID(), "hello from b"),
		"b got a's":     rb.gossipCount(a.ID(), "hello from a"),
		"c got a's":     rc.gossipCount(a.ID(), "hello from a"),
		"a got its own": ra.gossipCount(a.ID(), "hello from a"),
		"b got its own": rb.gossipCount(b.ID(), "hello from b"),
	} {
		want := 1
		if strings.Contains(name, "own") {
			want = 0
		}
		if n != want {
			t.Errorf("%s: %d deliveries, want %d", name, n, want)
		}
	}
	if s := b.Stats(); s.GossipPublished != 2 || s.GossipBytesOut != uint64(len("hello from b")+len("barrier")) {
		t.Errorf("b stats: %+v", s)
	}
	if s := c.Stats(); s.GossipReceived != 4 {
		t.Errorf("c received %d, want 4", s.GossipReceived)
	}

	if err := a.Broadcast(ctx, make([]byte, DefaultMaxMessageBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized broadcast: %v, want ErrTooLarge", err)
	}
}

// A message that ValidateGossip rejects is neither delivered nor
// forwarded, and is counted.
func TestValidateRejects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ra, rb, rc := &recorder{}, &recorder{}, &recorder{}
	errBad := errors.New("bad payload")

	// b is the hub and validates; a and c do not.
	cfg := testConfig()
	cfg.ValidateGossip = func(_ peer.ID, data []byte) error {
		if strings.HasPrefix(string(data), "bad") {
			return errBad
		}
		return nil
	}
	b := startTransport(t, cfg, rb)
	leaf := testConfig()
	leaf.Bootstrap = addrsOf(b)
	leaf.noRecords = true // a and c stay apart: only b relays between them
	a := startTransport(t, leaf, ra)
	c := startTransport(t, leaf, rc)
	waitMesh(t, map[*Transport][]*Transport{b: {a, c}, a: {b}, c: {b}})

	for _, m := range []string{"bad 1", "good 1", "bad 2", "good 2"} {
		if err := a.Broadcast(ctx, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "good messages and rejections", func() bool {
		return rb.gossipCount(a.ID(), "good 2") == 1 && rc.gossipCount(a.ID(), "good 2") == 1 &&
			rb.gossipCount(a.ID(), "good 1") == 1 && rc.gossipCount(a.ID(), "good 1") == 1 &&
			b.Stats().GossipRejected[RejectInvalid] == 2
	})
	// Rejected messages are decided: they will never be delivered by b,
	// nor forwarded to c (c's only route).
	if got := rb.gossipWithPrefix("bad"); len(got) != 0 {
		t.Errorf("b delivered rejected messages %q", got)
	}
	if got := rc.gossipWithPrefix("bad"); len(got) != 0 {
		t.Errorf("c received rejected messages %q", got)
	}
	if n := c.Stats().GossipRejected[RejectInvalid]; n != 0 {
		t.Errorf("c rejected %d, want 0 (it has no validator and should not see them)", n)
	}
}

// The tracer reports a peer whose queue dropped an RPC carrying messages,
// once for a burst, not one that lost only control messages, and the
// author of a message it could not deliver.
func TestGossipTracerReportsLoss(t *testing.T) {
	var st counters
	g := newGossipTracer(&st)
	msg := &pubsub.RPC{RPC: pb.RPC{Publish: []*pb.Message{{Data: []byte("x")}}}}
	ctl := &pubsub.RPC{RPC: pb.RPC{Control: &pb.ControlMessage{}}}
	g.DropRPC(ctl, "a")
	for range 3 {
		g.DropRPC(msg, "b")
	}
	g.UndeliverableMessage(&pubsub.Message{Message: &pb.Message{From: []byte("c")}})
	select {
	case <-g.lost.wake:
	default:
		t.Fatal("no wake-up after a dropped message")
	}
	if got := g.lost.take(); !slices.Equal(got, []peer.ID{"b", "c"}) {
		t.Fatalf("lost %v, want [b c]", got)
	}
	if got := st.gossipDropped.Load(); got != 4 {
		t.Fatalf("%d drops counted, want 4", got)
	}
	if got := g.lost.take(); len(got) != 0 {
		t.Fatalf("lost %v after take, want none", got)
	}
}

// A message gossipsub dropped before validation (its validation queue was
// full: one inline worker validates everyone's gossip) is lost as surely
// as one dropped on the way out: the peer that sent it, which validated
// and holds it, is reported, so the node repairs with it soon; our own
// validator's rejections and duplicates are not losses.
func TestGossipTracerReportsValidationQueueLoss(t *testing.T) {
	var st counters
	g := newGossipTracer(&st)
	m := func(from peer.ID) *pubsub.Message {
		return &pubsub.Message{Message: &pb.Message{From: []byte("author")}, ReceivedFrom: from}
	}
	g.RejectMessage(m("fwd1"), pubsub.RejectValidationQueueFull)
	g.RejectMessage(m("fwd2"), pubsub.RejectValidationThrottled)
	g.RejectMessage(m("bad"), pubsub.RejectValidationFailed)
	g.RejectMessage(m("ign"), pubsub.RejectValidationIgnored)
	g.RejectMessage(m(""), pubsub.RejectValidationQueueFull)
	select {
	case <-g.lost.wake:
	default:
		t.Fatal("no wake-up after a message the validation queue dropped")
	}
	if got := g.lost.take(); !slices.Equal(got, []peer.ID{"fwd1", "fwd2"}) {
		t.Fatalf("lost %v, want [fwd1 fwd2]", got)
	}
}
