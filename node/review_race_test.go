package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Writes racing renews and a destroy of one session on one peer (the
// session's write lock serialises them): exactly one of three concurrent
// renews wins; every write that returned nil before the renew is in the
// renewed session, every one after it fails with ErrNotFound, none is
// lost silently; the old token is dead on both peers; writes racing the
// destroy of the new session leave it destroyed everywhere.
func TestReviewRenewDestroyRacingWrites(t *testing.T) {
	c := newCluster(t, 2, nil)
	ctx := context.Background()
	a := c.nodes[0]
	tok, err := a.Create(ctx, WithFields(map[string][]byte{"base": []byte("1")}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	lastOK := map[string]string{} // per writer: the value of its last write that returned nil
	failed := map[string]bool{}   // per writer: a write failed (after the renew)
	renewed := []string{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := fmt.Sprintf("g%d", g)
			for i := range 300 {
				err := a.Set(ctx, tok, k, []byte(fmt.Sprint(i)))
				mu.Lock()
				switch {
				case err == nil && failed[k]:
					t.Errorf("write %s=%d returned nil after an earlier one failed", k, i)
				case err == nil:
					lastOK[k] = fmt.Sprint(i)
				case errors.Is(err, ErrNotFound):
					failed[k] = true
				default:
					t.Errorf("set %s: %v", k, err)
				}
				mu.Unlock()
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(2 * time.Millisecond)
			nt, err := a.Renew(ctx, tok)
			switch {
			case err == nil:
				mu.Lock()
				renewed = append(renewed, nt)
				mu.Unlock()
			case !errors.Is(err, ErrNotFound):
				t.Errorf("renew: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(renewed) != 1 {
		t.Fatalf("%d of 3 concurrent renews of one session won, want 1", len(renewed))
	}
	s, err := a.Get(ctx, renewed[0])
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range lastOK {
		if got, _ := s.GetString(k); got != v {
			t.Fatalf("the renewed session has %s=%q, but the last write that returned nil wrote %q", k, got, v)
		}
	}
	t.Logf("last writes before the renew: %v; writers cut off by it: %d", lastOK, len(failed))
	// Now destroy the new session while writers hammer it.
	nt := renewed[0]
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := a.Set(ctx, nt, fmt.Sprintf("h%d-%d", g, i), []byte("v")); err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("set: %v", err)
				}
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := a.Destroy(ctx, nt); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, n := range c.nodes {
		for _, tk := range []string{tok, nt} {
			eventually(t, 5*time.Second, "a dead token reads as not found on "+string(n.ID()), func() bool {
				_, err := n.Get(ctx, tk)
				return errors.Is(err, ErrNotFound)
			})
		}
	}
	eventually(t, 5*time.Second, "the peers converge", c.converged)
}
