package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffers reused too early (Core.Recycle of a Ready still being carried
// out, persist's pooled field-record slabs, encode buffers) show up as a
// value that does not belong where it is read. Every value written here
// names its session, key and sequence number, padded to varying lengths, so
// a byte from another write read anywhere is caught: by a subscriber
// reading each change as it comes (local writes and remote batches, on
// every peer), by the final reads on every peer, and by reading the
// Badger files again after the peers closed.
func TestReviewNoBufferReuseUnderLoad(t *testing.T) {
	const peers, writers, sessionsPer, rounds = 3, 3, 4, 30
	dirs := make([]string, peers)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	c := &cluster{net: newMemNet()}
	for i := range peers {
		cfg := testConfig()
		cfg.DataDir = dirs[i]
		cfg.Dial = c.net.dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		nd, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
	}
	closed := false
	closeAll := func() {
		if closed {
			return
		}
		closed = true
		for _, n := range c.nodes {
			if err := n.Close(context.Background()); err != nil {
				t.Errorf("close %s: %v", n.ID(), err)
			}
		}
	}
	t.Cleanup(closeAll)
	c.net.connectAll()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	value := func(id, key string, seq int) string {
		return fmt.Sprintf("%s|%s|%d|%s", id, key, seq, strings.Repeat("x", seq%37))
	}
	check := func(id, key, v string) error {
		parts := strings.SplitN(v, "|", 4)
		if len(parts) != 4 || parts[0] != id || parts[1] != key {
			return fmt.Errorf("session %s field %s holds %q, written for another", id, key, v)
		}
		var seq int
		if _, err := fmt.Sscan(parts[2], &seq); err != nil || parts[3] != strings.Repeat("x", seq%37) {
			return fmt.Errorf("session %s field %s holds a torn value %q", id, key, v)
		}
		return nil
	}

	// Subscribers: every change a peer reports is read back at once.
	var subWG sync.WaitGroup
	var seen sync.Map // peer index -> count of changes checked
	for i, n := range c.nodes {
		ch := n.Watch(ctx)
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			count := 0
			for ch := range ch {
				for _, k := range ch.Fields {
					if strings.HasPrefix(k, "\x00") {
						continue // a version entry (crdt's own)
					}
					if !strings.HasPrefix(k, "w") {
						t.Errorf("peer %d: change of %s lists field %q, never written", i, ch.ID, k)
					}
				}
				s, err := n.Store().Get(ch.ID)
				if err != nil {
					continue // destroyed or not yet stored: nothing to check
				}
				for _, k := range s.Keys() {
					if strings.HasPrefix(k, "\x00") {
						continue
					}
					v, _ := s.Get(k)
					if err := check(ch.ID, k, v); err != nil {
						t.Errorf("peer %d: %v", i, err)
					}
				}
				count++
			}
			seen.Store(i, count)
		}()
	}

	type sess struct {
		token, id string
	}
	var mu sync.Mutex
	final := map[string]map[string]string{} // id -> key -> last value acknowledged
	var wg sync.WaitGroup
	for p, n := range c.nodes {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ss []sess
				for range sessionsPer {
					tok, err := n.Create(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					id, _ := SessionID(tok)
					ss = append(ss, sess{tok, id})
				}
				last := map[string]map[string]string{}
				for r := range rounds {
					for j, s := range ss {
						key := fmt.Sprintf("w%d-%d-%d", p, w, (r+j)%5)
						v := value(s.id, key, r)
						var err error
						if r%3 == 0 {
							k2 := fmt.Sprintf("w%d-%d-m%d", p, w, r%4)
							v2 := value(s.id, k2, r)
							err = n.Update(ctx, s.token, map[string][]byte{key: []byte(v), k2: []byte(v2)})
							if err == nil {
								if last[s.id] == nil {
									last[s.id] = map[string]string{}
								}
								last[s.id][k2] = v2
							}
						} else {
							err = n.Set(ctx, s.token, key, []byte(v))
						}
						if err != nil {
							t.Errorf("write %s %s: %v", s.id, key, err)
							return
						}
						if last[s.id] == nil {
							last[s.id] = map[string]string{}
						}
						last[s.id][key] = v
					}
				}
				mu.Lock()
				for id, m := range last {
					final[id] = m
				}
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	verify := func(where string, get func(id string) (map[string]string, error)) {
		for id, want := range final {
			got, err := get(id)
			if err != nil {
				t.Errorf("%s: session %s: %v", where, id, err)
				continue
			}
			for k, v := range got {
				if err := check(id, k, v); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: session %s field %s = %q, want %q", where, id, k, got[k], v)
				}
			}
		}
	}
	eventually(t, 20*time.Second, "the peers converge", c.converged)
	for i, n := range c.nodes {
		verify(fmt.Sprintf("peer %d", i), func(id string) (map[string]string, error) {
			s, err := n.Store().Get(id)
			if err != nil {
				return nil, err
			}
			m := map[string]string{}
			for _, k := range s.Keys() {
				if !strings.HasPrefix(k, "\x00") {
					m[k], _ = s.Get(k)
				}
			}
			return m, nil
		})
	}
	// The digests kept up write by write must be the ones recomputed from
	// the stored sessions when the store opens (anti-entropy compares them).
	roots := make([]uint64, peers)
	for i, n := range c.nodes {
		roots[i] = n.Store().Root()
	}
	cancel()
	closeAll()
	subWG.Wait()
	for i := range peers {
		n, _ := seen.Load(i)
		if n.(int) == 0 {
			t.Errorf("peer %d's subscriber checked no change", i)
		}
	}
	// The bytes on disk: reopen each peer alone and read everything again.
	for i := range peers {
		cfg := testConfig()
		cfg.DataDir = dirs[i]
		cfg.Dial = newMemNet().dialer(PeerID(fmt.Sprintf("peer-%d", i)))
		nd, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := nd.Store().Root(); got != roots[i] {
			t.Errorf("peer %d: digest root %x kept while running, %x recomputed on open", i, roots[i], got)
		}
		verify(fmt.Sprintf("peer %d reopened", i), func(id string) (map[string]string, error) {
			s, err := nd.Store().Get(id)
			if err != nil {
				return nil, err
			}
			m := map[string]string{}
			for _, k := range s.Keys() {
				if !strings.HasPrefix(k, "\x00") {
					m[k], _ = s.Get(k)
				}
			}
			return m, nil
		})
		if err := nd.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
