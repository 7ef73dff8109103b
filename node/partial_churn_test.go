package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Partial replication under membership churn at 60 peers in 3 regions,
// R = 2: peers leave and join while clients write (on any peer, most of
// them not holders) and destroy sessions. After settling, the checkers:
// every session has exactly min(R, members) = 2 copies in every region,
// all on its holders (no peer keeps one it does not hold); a read on peers
// of every region returns each session's latest acknowledged write (no
// lost write); destroyed sessions stay destroyed (no resurrection). It
// runs in real time on the in-memory network (node's memnet), not in the
// deterministic simulator.
func TestPartialReplicationChurn60(t *testing.T) {
	if testing.Short() {
		t.Skip("60 peers for several seconds: run without -short (CI's first pass does)")
	}
	regions := []string{"eu", "us", "ap"}
	c := newPartCluster(t, regions, 20, 2, func(cfg *Config) {
		cfg.SyncInterval = 500 * time.Millisecond
		cfg.MaxConcurrentSyncs = 8
		// Sixty peers share the test machine's cores: room for slow
		// answers rather than stale reads and abandoned handoffs.
		cfg.ConsistencyWait = 10 * time.Second
		cfg.SyncTimeout = 10 * time.Second
	})
	ctx := context.Background()
	members := map[string]int{"eu": 20, "us": 20, "ap": 20}
	want := func() map[string]int {
		w := map[string]int{}
		for rg, m := range members {
			w[rg] = min(2, m)
			w[rg+"/members"] = m
		}
		return w
	}
	c.waitSettled(20*time.Second, nil, want())
	rng := rand.New(rand.NewPCG(15, 60))
	pick := func() *Node {
		live := c.live()
		return live[rng.IntN(len(live))]
	}

	type sess struct {
		token     string
		id        string
		latest    string
		version   Version
		destroyed bool
	}
	var ss []*sess
	for i := range 120 {
		s := &sess{latest: fmt.Sprint(i)}
		tok, err := pick().Create(WithVersion(ctx, &s.version), WithFields(map[string][]byte{"v": []byte(s.latest)}))
		if err != nil {
			t.Fatal(err)
		}
		s.token, s.id = tok, mustID(t, tok)
		ss = append(ss, s)
	}
	write := func(s *sess, v string) {
		t.Helper()
		w := pick()
		if err := w.Set(WithVersion(ctx, &s.version), s.token, "v", []byte(v)); err != nil {
			_, gerr := w.Store().Get(s.id)
			for i, o := range c.nodes {
				if o == nil {
					continue
				}
				if st, err := o.Store().Get(s.id); err == nil {
					t.Logf("%s (%s) holds=%v covers=%v version %s", o.ID(), c.regions[i], o.core.HoldsID(s.id), st.Version().Covers(s.version), st.Version())
				}
			}
			t.Logf("want %s", s.version)
			t.Fatalf("write on %s: %v (holds %v, stored %v, holders %v, peers %d, placement %+v, copies %v)", w.ID(), err,
				w.core.HoldsID(s.id), gerr, w.core.Holders(s.id), len(w.Peers()), w.Placement(), c.copies(s.id))
		}
		s.latest = v
	}
	churnStart := time.Now()
	// Churn: ten rounds of a leave, a join and writes in between.
	for round := range 10 {
		for range 6 {
			s := ss[rng.IntN(len(ss))]
			if !s.destroyed {
				write(s, fmt.Sprintf("r%d-%d", round, rng.IntN(1000)))
			}
		}
		// A peer leaves (never the last two of a region).
		for {
			i := rng.IntN(len(c.nodes))
			if c.nodes[i] != nil && members[c.regions[i]] > 3 {
				members[c.regions[i]]--
				c.stop(i)
				break
			}
		}
		for range 6 {
			s := ss[rng.IntN(len(ss))]
			if !s.destroyed {
				write(s, fmt.Sprintf("r%d-%d", round, rng.IntN(1000)))
			}
		}
		if round%2 == 0 {
			rg := regions[rng.IntN(len(regions))]
			c.join(c.add(rg))
			members[rg]++
		}
		s := ss[rng.IntN(len(ss))]
		if !s.destroyed {
			w := pick()
			if err := w.Destroy(WithVersion(ctx, &s.version), s.token); err != nil {
				t.Fatalf("destroy on %s: %v", w.ID(), err)
			}
			s.destroyed = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	var live []string
	for _, s := range ss {
		if !s.destroyed {
			live = append(live, s.id)
		}
	}
	churned := time.Since(churnStart)
	took := c.waitSettled(30*time.Second, live, want())
	t.Logf("churn (10 leaves, 5 joins, 120 writes, 10 destroys) took %v; settled %v later: %d live sessions with 2 copies in each region, members %v",
		churned.Round(time.Millisecond), took.Round(time.Millisecond), len(live), members)
	// Reads on a peer of each region.
	perRegion := map[string]int{}
	for i, n := range c.nodes {
		if n == nil || perRegion[c.regions[i]] == 1 {
			continue
		}
		perRegion[c.regions[i]]++
		for _, s := range ss {
			got, err := n.Get(ctx, s.token)
			switch {
			case s.destroyed:
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("resurrection: destroyed session %.8s reads %v on %s", s.id, err, n.ID())
				}
			case err != nil:
				t.Errorf("lost: session %.8s on %s: %v", s.id, n.ID(), err)
			default:
				if v, _ := got.GetString("v"); v != s.latest {
					t.Errorf("lost write: session %.8s on %s reads %q, latest acknowledged %q", s.id, n.ID(), v, s.latest)
				}
			}
		}
	}
}
