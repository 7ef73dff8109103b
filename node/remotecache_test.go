package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/crdt"
)

// The cache of sessions read from their holders keeps a copy for
// remoteCacheTTL on the node's clock, and at most remoteCacheSessions of
// them, dropping the least recently used.
func TestRemoteCacheTTLAndBound(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	var c remoteCache
	mk := func(id string) *crdt.Session {
		return crdt.Create(id, crdt.NewTimestamp(t0.UnixMilli(), 0, 1), t0.Add(time.Hour), time.Hour)
	}
	c.put(mk("a"), t0)
	if _, ok := c.get("a", t0.Add(remoteCacheTTL-time.Millisecond)); !ok {
		t.Fatal("a copy younger than the TTL was not served")
	}
	if _, ok := c.get("a", t0.Add(remoteCacheTTL)); ok {
		t.Fatal("a copy as old as the TTL was served")
	}
	if _, ok := c.get("a", t0); ok {
		t.Fatal("an expired copy stayed in the cache")
	}
	c.put(mk("x"), t0)
	c.put(mk("0"), t0)
	c.get("x", t0) // the oldest put, but used since
	for i := 1; i < remoteCacheSessions; i++ {
		c.put(mk(fmt.Sprint(i)), t0)
	}
	if n := c.lru.Len(); n != remoteCacheSessions {
		t.Fatalf("%d copies cached, bound %d", n, remoteCacheSessions)
	}
	if _, ok := c.get("0", t0); ok {
		t.Fatal("the least recently used copy was kept over the bound")
	}
	if _, ok := c.get("x", t0); !ok {
		t.Fatal("a recently used copy was dropped")
	}
}
