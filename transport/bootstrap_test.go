package transport

import (
	"context"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
)

// A bootstrap peer that is down at start, then restarts, is connected to
// each time it comes up.
func TestBootstrapRedial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dirB, _ := identity(t)

	// Learn b's address (identity and port), then take it down.
	cfgB := testConfig()
	cfgB.DataDir = dirB
	b, err := New(ctx, cfgB, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	addrB := b.Addrs()[0]
	idB := b.ID()
	b.Close()
	listen, _ := multiaddr.SplitLast(addrB) // without /p2p
	cfgB.ListenAddrs = []string{listen.String()}

	ra := &recorder{}
	cfgA := testConfig()
	cfgA.Bootstrap = []string{addrB.String()}
	a := startTransport(t, cfgA, ra)

	restart := func() *Transport {
		t.Helper()
		b, err := New(ctx, cfgB, &recorder{})
		if err != nil {
			t.Fatalf("restart b on %s: %v", listen, err)
		}
		t.Cleanup(func() { b.Close() })
		if b.ID() != idB {
			t.Fatalf("b's id changed")
		}
		return b
	}

	// Let a fail a few dials first.
	waitFor(t, 5*time.Second, "a's failed dials", func() bool { return a.Stats().BootstrapDialsFailed >= 2 })
	b = restart()
	up := time.Now()
	waitFor(t, 10*time.Second, "a connected to b", func() bool { return ra.isUp(idB) })
	t.Logf("connected %v after b came up", time.Since(up))

	b.Close()
	waitFor(t, 5*time.Second, "a lost b", func() bool { return !ra.isUp(idB) })
	b = restart()
	up = time.Now()
	waitFor(t, 10*time.Second, "a reconnected to b", func() bool { return ra.isUp(idB) })
	t.Logf("reconnected %v after b restarted", time.Since(up))
	if u, d := ra.ups(idB); u != 2 || d != 1 {
		t.Errorf("PeerUp %d times, PeerDown %d times; want 2 and 1", u, d)
	}
}
