package node

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
	"github.com/sessionmesh/sessionmesh/persist"
)

// Version is the version of a session as a client last saw it: a version
// vector (crdt.Version) with one entry per peer that wrote the session,
// usually one or two. Its String form (base64url, 23 characters for one
// entry) is what a client carries between requests; ParseVersion reads it
// back.
type Version = crdt.Version

// ParseVersion decodes a Version from its String form. Errors wrap
// ErrInvalid.
func ParseVersion(s string) (Version, error) {
	v, err := crdt.ParseVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return v, nil
}

// internalPrefix starts the field keys the node keeps for itself (version
// entries, the owner): never shown by Session, never written by callers.
const internalPrefix = ReservedKeyPrefix + "sm/"

type versionKey struct{}

// WithVersion returns a context under which the node's calls on one
// session (Get, Touch, Update, Set, Remove, Save, Renew, Destroy, and
// Create) give the caller session consistency across peers. Before acting,
// a call whose *v is not empty makes sure this peer's copy of the session
// holds everything *v says the client saw: it waits for replication, asks
// the peers that wrote it for it after Config.ConsistencyFetchAfter, and
// fails with ErrStale when neither brought it within
// Config.ConsistencyWait. After acting, the call stores in *v the version
// of the session as it read or wrote it (Create and Renew: of the new
// session), which the caller hands back to the client. A call that fails
// leaves *v as it was. One *v serves one call at a time.
//
// With an empty *v a call behaves as without WithVersion and only records
// the version. Since a peer serves a version only once it holds
// everything it covers, read-your-writes and monotonic reads follow for a
// client that always shows its latest version.
func WithVersion(ctx context.Context, v *Version) context.Context {
	return context.WithValue(ctx, versionKey{}, v)
}

func versionOf(ctx context.Context) *Version {
	v, _ := ctx.Value(versionKey{}).(*Version)
	return v
}

// setVersion records v for the caller of ctx, if it asked.
func setVersion(ctx context.Context, v Version) {
	if p := versionOf(ctx); p != nil {
		*p = v
	}
}

// await waits until this peer's copy of session id covers the version the
// caller of ctx carries, if any.
func (n *Node) await(ctx context.Context, id string) error {
	p := versionOf(ctx)
	if p == nil || len(*p) == 0 {
		return nil
	}
	want := *p
	start := time.Now()
	ch := make(chan struct{}, 1)
	n.waitMu.Lock()
	n.waiters[id] = append(n.waiters[id], ch)
	n.waiting.Add(1)
	n.waitMu.Unlock()
	defer n.dropWaiter(id, ch)
	fetchAt := start.Add(n.cfg.ConsistencyFetchAfter)
	deadline := start.Add(n.cfg.ConsistencyWait)
	fetched := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for waited := false; ; waited = true {
		have, err := n.covers(id, want)
		if err != nil || have {
			if err == nil && waited {
				// Only calls that found this peer behind: the latency
				// session consistency adds.
				n.m.Observe("consistency_wait_seconds", time.Since(start).Seconds())
			}
			return err
		}
		now := time.Now()
		if !now.Before(deadline) {
			n.m.Add("consistency_stale", 1)
			return fmt.Errorf("%w: session %.8s… not at version %s within %v", ErrStale, id, want, n.cfg.ConsistencyWait)
		}
		if !fetched && !now.Before(fetchAt) {
			fetched = true
			n.fetch(id, want)
		}
		next := deadline
		if !fetched {
			next = fetchAt
		}
		if !n.core.ServesID(id) {
			// Partial replication: nothing wakes a peer that does not
			// hold the session; ask its holders again soon.
			if soon := now.Add(max(n.cfg.ConsistencyFetchAfter, time.Millisecond)); soon.Before(next) {
				next = soon
			}
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.done:
			return ErrClosed
		}
	}
}

// covers reports whether this peer's copy of id holds version want. A
// destroyed session covers every version: destroyed is final.
func (n *Node) covers(id string, want Version) (bool, error) {
	if n.isClosed() {
		return false, ErrClosed
	}
	// Not from the cache of sessions read from their holders: a version
	// asks for the holders' copy.
	s, err := n.storeGetFrom(id, false)
	if errors.Is(err, persist.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("node: get: %w", err)
	}
	return s.IsDestroyed() || s.Version().Covers(want), nil
}

// fetch asks the peers that wrote what this peer misses of want for
// session id; their answers merge like gossip, and wake the wait.
func (n *Node) fetch(id string, want Version) {
	var have Version
	if s, err := n.store.Get(id); err == nil {
		have = s.Version()
	}
	missing := have.Missing(want)
	n.step(func(c *Core, now time.Time) { c.Fetch(now, id, missing) })
}

func (n *Node) dropWaiter(id string, ch chan struct{}) {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	n.waiting.Add(-1)
	ws := n.waiters[id]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.waiters, id)
	} else {
		n.waiters[id] = ws
	}
}

// wakeWaiters tells the callers waiting for these sessions that they
// changed.
func (n *Node) wakeWaiters(changes []Change) {
	if n.waiting.Load() == 0 {
		return
	}
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	for _, c := range changes {
		for _, ch := range n.waiters[c.ID] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// sessionLocks serialises the local writes of one session on this peer
// (read, stamp, store), so that each write carries every earlier local
// write of the session: what makes a version entry stand for the whole
// state its writer held (crdt.Version). A writer holds its stripe until
// its write is durable, so two writers of different sessions that share a
// stripe wait for each other's commit: with 64 stripes, 50 concurrent
// writers of distinct sessions had about 20 blocked at any time
// (BenchmarkMeshWrites, mutex profile). 4096 stripes (32 KiB) make such a
// collision rare.
type sessionLocks struct {
	seed  maphash.Seed
	locks [4096]sync.Mutex
}

// lock locks the stripe of session id and returns it, for a deferred
// Unlock (a method value returned instead would cost an allocation per
// write).
func (l *sessionLocks) lock(id string) *sync.Mutex {
	m := &l.locks[maphash.String(l.seed, id)%uint64(len(l.locks))]
	m.Lock()
	return m
}
