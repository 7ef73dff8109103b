package transport

import (
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeConn is just enough of a network.Conn for the connection tracker.
type fakeConn struct {
	network.Conn
	remote peer.ID
	closed atomic.Bool
}

func (c *fakeConn) RemotePeer() peer.ID { return c.remote }
func (c *fakeConn) Close() error        { c.closed.Store(true); return nil }

// Several connections to one peer give one PeerUp and one PeerDown; a
// non-member's connection gives none and is closed.
func TestPeerEventsDeduplicated(t *testing.T) {
	t.Parallel()
	_, self := identity(t)
	_, p := identity(t)
	_, stranger := identity(t)
	tr := &Transport{
		gater:   newGater(self, map[peer.ID]struct{}{p: {}}, &counters{}, newKeyedLog(slog.New(slog.DiscardHandler), time.Second)),
		tracker: newConnTracker(),
		events:  newEventQueue(),
	}
	c1, c2 := &fakeConn{remote: p}, &fakeConn{remote: p}
	tr.connected(nil, c1)
	tr.connected(nil, c2)
	tr.connected(nil, c1) // a repeated notification (the scan at start)
	if got := tr.Peers(); !slices.Equal(got, []peer.ID{p}) {
		t.Errorf("Peers() = %v", got)
	}
	tr.disconnected(nil, c1)
	if !tr.tracker.isUp(p) {
		t.Error("peer down while a connection remains")
	}
	tr.disconnected(nil, c2)
	tr.disconnected(nil, c2) // unknown by now: ignored

	s := &fakeConn{remote: stranger}
	tr.connected(nil, s)
	tr.disconnected(nil, s)

	want := []peerEvent{{id: p, up: true}, {id: p, up: false}}
	if got := tr.events.take(); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if len(tr.Peers()) != 0 {
		t.Errorf("Peers() = %v after all closed", tr.Peers())
	}
	waitFor(t, 5*time.Second, "stranger's connection closed", s.closed.Load)
	if !tr.tracker.wasSeen(p) || tr.tracker.wasSeen(stranger) {
		t.Error("seen set wrong")
	}
}
