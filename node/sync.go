package node

import (
	"context"
	"time"
)

// SyncResult is how an anti-entropy round ended.
type SyncResult string

// Round results.
const (
	// SyncRepaired: the stores differed and sessions were exchanged.
	SyncRepaired SyncResult = "repaired"
	// SyncInSync: the stores already agreed.
	SyncInSync SyncResult = "in_sync"
	// SyncFailed: the round did not complete; SyncReport.Reason says why
	// (timeout, peer_lost, busy, ...). Whatever it merged stays merged.
	SyncFailed SyncResult = "failed"
)

// SyncReport describes one anti-entropy round, from this peer's side.
type SyncReport struct {
	Peer PeerID
	// Round is the round's id, unique per initiating peer.
	Round uint64
	// Initiator is set when this peer started the round.
	Initiator bool
	Result    SyncResult
	// Reason says why a round failed.
	Reason string
	// Sessions and message bytes received from the peer and sent to it.
	SessionsIn, SessionsOut int
	BytesIn, BytesOut       int
	Started                 time.Time
	Duration                time.Duration
}

type syncKey struct {
	peer PeerID
	id   uint64
}

// Sync runs one anti-entropy round with peer now (with a peer of the
// node's choosing when peer is empty), waits for it to end, and reports
// what it repaired. A round this peer already started with that peer is
// waited for rather than doubled. It fails with ErrUnknownPeer when the
// peer is not connected, ErrSyncBusy when MaxConcurrentSyncs rounds are
// running, and ctx's error when ctx ends first (the round goes on). A round
// that ends as failed returns its report with a nil error: Result and
// Reason say what happened.
func (n *Node) Sync(ctx context.Context, peer PeerID) (SyncReport, error) {
	if err := ctx.Err(); err != nil {
		return SyncReport{}, err
	}
	if n.isClosed() {
		return SyncReport{}, ErrClosed
	}
	done := make(chan SyncReport, 1)
	var key syncKey
	var err error
	n.step(func(c *Core, now time.Time) {
		var id uint64
		var p PeerID
		if p, id, err = c.StartSync(now, peer); err != nil {
			return
		}
		key = syncKey{p, id}
		// Registered under the core's lock, so the step that ends the
		// round (later, under the same lock) finds it.
		n.syncMu.Lock()
		n.syncWaiters[key] = append(n.syncWaiters[key], done)
		n.syncMu.Unlock()
	})
	if err != nil {
		return SyncReport{}, err
	}
	n.kick()
	select {
	case rep := <-done:
		return rep, nil
	case <-ctx.Done():
		n.dropSyncWaiter(key, done)
		return SyncReport{}, ctx.Err()
	case <-n.done:
		n.dropSyncWaiter(key, done)
		return SyncReport{}, ErrClosed
	}
}

func (n *Node) dropSyncWaiter(key syncKey, done chan SyncReport) {
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	ws := n.syncWaiters[key]
	for i, w := range ws {
		if w == done {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.syncWaiters, key)
	} else {
		n.syncWaiters[key] = ws
	}
}

// reportRounds hands ended rounds to the Sync calls waiting for them.
func (n *Node) reportRounds(rs []SyncReport) {
	if len(rs) == 0 {
		return
	}
	n.syncMu.Lock()
	defer n.syncMu.Unlock()
	for _, r := range rs {
		if !r.Initiator {
			continue
		}
		k := syncKey{r.Peer, r.Round}
		for _, w := range n.syncWaiters[k] {
			w <- r
		}
		delete(n.syncWaiters, k)
	}
}
