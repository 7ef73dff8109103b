package transport

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A host outside AllowedPeers cannot connect, gets no gossip, and never
// shows up in PeerUp.
func TestAllowlist(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dirA, idA := identity(t)
	dirB, idB := identity(t)
	dirC, idC := identity(t)
	members := []peer.ID{idA, idB, idC}
	ra, rb, rc, rd := &recorder{}, &recorder{}, &recorder{}, &recorder{}

	member := func(dir string, boot []string) Config {
		cfg := testConfig()
		cfg.DataDir = dir
		cfg.AllowedPeers = members
		cfg.Bootstrap = boot
		return cfg
	}
	a := startTransport(t, member(dirA, nil), ra)
	b := startTransport(t, member(dirB, addrsOf(a)), rb)
	c := startTransport(t, member(dirC, addrsOf(a)), rc)

	// d is open itself and bootstraps to a.
	dcfg := testConfig()
	dcfg.Bootstrap = addrsOf(a)
	d := startTransport(t, dcfg, rd)

	// b and c learn each other from a.
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})
	if err := d.Connect(ctx, a.Addrs()[0]); err == nil {
		// The handshake can complete on d's side before a's gater closes
		// the connection; then it must go away.
		waitFor(t, 5*time.Second, "d's connection to be closed", func() bool { return len(d.Peers()) == 0 })
	}
	if err := a.Connect(ctx, d.Addrs()[0]); !errors.Is(err, ErrNotMember) {
		t.Errorf("a.Connect(d): %v, want ErrNotMember", err)
	}
	if err := a.Send(ctx, d.ID(), []byte("x")); !errors.Is(err, ErrNotMember) {
		t.Errorf("a.Send(d): %v, want ErrNotMember", err)
	}
	waitFor(t, 5*time.Second, "refusals", func() bool { return a.Stats().ConnectionsRefused > 0 })

	if err := a.Broadcast(ctx, []byte("members only")); err != nil {
		t.Fatal(err)
	}
	if err := d.Broadcast(ctx, []byte("from outside")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "members' delivery", func() bool {
		return rb.gossipCount(a.ID(), "members only") == 1 && rc.gossipCount(a.ID(), "members only") == 1
	})
	if n := rd.gossipLen(); n != 0 {
		t.Errorf("d received %d gossip messages", n)
	}
	for name, r := range map[string]*recorder{"a": ra, "b": rb, "c": rc} {
		if up, _ := r.ups(d.ID()); up != 0 {
			t.Errorf("%s: PeerUp(d) called %d times", name, up)
		}
		if n := r.gossipCount(d.ID(), "from outside"); n != 0 {
			t.Errorf("%s received d's gossip", name)
		}
	}
	for name, tr := range map[string]*Transport{"a": a, "b": b, "c": c} {
		for _, m := range tr.Members() {
			if m.ID == d.ID() {
				t.Errorf("%s lists d as a member", name)
			}
		}
	}
	if ps := a.Peers(); len(ps) != 2 {
		t.Errorf("a's peers: %v", ps)
	}
}

// Hosts with the same PSK connect and gossip; a host with another PSK
// cannot connect.
func TestPSK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	psk := bytes.Repeat([]byte{7}, PSKSize)
	other := bytes.Repeat([]byte{8}, PSKSize)
	ra, rb, rc := &recorder{}, &recorder{}, &recorder{}

	cfg := testConfig()
	cfg.PSK = psk
	a := startTransport(t, cfg, ra)
	cfg.Bootstrap = addrsOf(a)
	b := startTransport(t, cfg, rb)
	cfg.PSK = other
	cfg.Bootstrap = nil
	c := startTransport(t, cfg, rc)

	waitMesh(t, map[*Transport][]*Transport{a: {b}, b: {a}})
	// With the wrong key the handshake reads garbage: it fails at once or,
	// about half the time, hangs until libp2p's 5 s local dial timeout.
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Connect(dctx, a.Addrs()[0]); err == nil {
		t.Errorf("c connected with another PSK")
	}
	if err := a.Broadcast(ctx, []byte("private")); err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast(ctx, []byte("private too")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "gossip within the PSK mesh", func() bool {
		return rb.gossipCount(a.ID(), "private") == 1 && ra.gossipCount(b.ID(), "private too") == 1
	})
	if len(c.Peers()) != 0 || rc.gossipLen() != 0 {
		t.Errorf("c has peers %v and %d messages", c.Peers(), rc.gossipLen())
	}
	if up, _ := ra.ups(c.ID()); up != 0 {
		t.Errorf("a: PeerUp(c) called")
	}
	for _, a := range a.Addrs() {
		if addrKind(a) != "tcp" {
			t.Errorf("PSK host listens on %s", a)
		}
	}
}
