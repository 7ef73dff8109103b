package redisfront_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// A key written again after its session expired or was deleted gets a new
// session (a new generation) that every peer finds, while the ended ones
// stay ended; ended generations outlive garbage collection for as long as
// the newest one lives.
func TestKeyGenerations(t *testing.T) {
	clock := &meshtest.OffsetClock{}
	nodes := meshtest.Start(t, 2, func(i int, cfg *node.Config) {
		cfg.Clock = clock
		cfg.GCInterval = 50 * time.Millisecond
	})
	cfg := redisfront.Config{Lifetime: time.Minute}
	a := redis.NewClient(&redis.Options{Addr: meshtest.ServeRedis(t, nodes[0], cfg)})
	b := redis.NewClient(&redis.Options{Addr: meshtest.ServeRedis(t, nodes[1], cfg)})
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	// Generation 0 expires after its idle timeout...
	if err := a.Set(ctx, "sess:1", "v0", 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second)
	if err := a.Get(ctx, "sess:1").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after expiry: %v", err)
	}
	if ttl := a.TTL(ctx, "sess:1").Val(); ttl != -2 {
		t.Errorf("TTL after expiry = %v", ttl)
	}
	// ... and writing the key again starts generation 1.
	if err := a.Set(ctx, "sess:1", "v1", 30*time.Second).Err(); err != nil {
		t.Fatalf("SET after expiry: %v", err)
	}
	if v := a.Get(ctx, "sess:1").Val(); v != "v1" {
		t.Fatalf("GET = %q, want v1", v)
	}
	// Deleted through the other peer, written again: generation 2,
	// found through both peers.
	meshtest.Eventually(t, 10*time.Second, "v1 on peer b", func() bool { return b.Get(ctx, "sess:1").Val() == "v1" })
	if n := b.Del(ctx, "sess:1").Val(); n != 1 {
		t.Fatalf("DEL = %d", n)
	}
	meshtest.Eventually(t, 10*time.Second, "the delete on peer a", func() bool {
		return errors.Is(a.Get(ctx, "sess:1").Err(), redis.Nil)
	})
	if err := a.Set(ctx, "sess:1", "v2", 58*time.Second).Err(); err != nil {
		t.Fatalf("SET after DEL: %v", err)
	}
	meshtest.Eventually(t, 10*time.Second, "v2 on peer b", func() bool { return b.Get(ctx, "sess:1").Val() == "v2" })
	if keys := b.Keys(ctx, "sess:*").Val(); !slices.Equal(keys, []string{"sess:1"}) {
		t.Errorf("KEYS = %v, want the key once", keys)
	}

	// Generation 0 becomes collectable on its own (created at 0 with a
	// 1-minute lifetime, plus 5 s of drift) while generation 2 (created at
	// 11 s, idle 58 s) lives: the walk still reaches generation 2 after
	// garbage collection ran.
	clock.Advance(55*time.Second + 500*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // several GC rounds
	for name, c := range map[string]*redis.Client{"a": a, "b": b} {
		if v := c.Get(ctx, "sess:1").Val(); v != "v2" {
			t.Errorf("peer %s after generation 0's deadline: GET = %q, want v2", name, v)
		}
	}
}

// A key deleted and written again more often than one lifetime allows
// (64 generations) reads as absent, as it would in Redis: a session store
// then starts a new session instead of failing the request. Writes answer
// the documented error, DEL answers 0. Found by the review (every read
// answered the error for up to a lifetime).
func TestExhaustedKeyReadsAsAbsent(t *testing.T) {
	nodes := meshtest.Start(t, 1, nil)
	r := redis.NewClient(&redis.Options{Addr: meshtest.ServeRedis(t, nodes[0], redisfront.Config{}), MaxRetries: -1})
	defer r.Close()
	ctx := context.Background()
	for i := range 64 {
		if err := r.Set(ctx, "gx", "v", 0).Err(); err != nil {
			t.Fatalf("SET %d: %v", i, err)
		}
		if n, err := r.Del(ctx, "gx").Result(); err != nil || n != 1 {
			t.Fatalf("DEL %d: %d, %v", i, n, err)
		}
	}
	if err := r.Get(ctx, "gx").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of an exhausted key: %v, want nil", err)
	}
	if err := r.HGetAll(ctx, "gx").Err(); err != nil {
		t.Fatalf("HGETALL of an exhausted key: %v", err)
	}
	if n, err := r.Exists(ctx, "gx").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS of an exhausted key: %d, %v", n, err)
	}
	if d, err := r.TTL(ctx, "gx").Result(); err != nil || d != -2 {
		t.Fatalf("TTL of an exhausted key: %v, %v", d, err)
	}
	if n, err := r.Del(ctx, "gx").Result(); err != nil || n != 0 {
		t.Fatalf("DEL of an exhausted key: %d, %v", n, err)
	}
	err := r.Set(ctx, "gx", "v", 0).Err()
	if err == nil || !strings.Contains(err.Error(), "re-created too often") {
		t.Fatalf("SET of an exhausted key: %v, want the re-created error", err)
	}
}
