package redisfront_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessionmesh/sessionmesh/internal/meshtest"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/redisfront"
)

// benchFront serves the front of the first of three peers on disk
// (durability none, as bench/run's daemons), and returns a client with
// pool connections.
func benchFront(b *testing.B, pool int) *redis.Client {
	b.Helper()
	nodes := meshtest.Start(b, 3, func(i int, cfg *node.Config) {
		cfg.DataDir = b.TempDir()
		cfg.Durability = persist.DurabilityNone
		// As the daemons of bench/run: meshtest's short interval makes
		// anti-entropy rounds run all through a write burst, a fifth of
		// the mesh's CPU that the daemons do not spend.
		cfg.SyncInterval = node.DefaultConfig().SyncInterval
	})
	addr := meshtest.ServeRedis(b, nodes[0], redisfront.Config{})
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: pool, MaxRetries: -1})
	b.Cleanup(func() { c.Close() })
	return c
}

const benchKeys = 10_000

func fill(b *testing.B, c *redis.Client) {
	b.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	for i := range benchKeys {
		p.Set(ctx, "key:"+strconv.Itoa(i), "xxx", 0)
		p.HSet(ctx, "hash:"+strconv.Itoa(i), "a", "1", "b", "2", "c", "3")
		if p.Len() >= 200 || i == benchKeys-1 {
			if _, err := p.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFront measures GET, SET, HSET and HGETALL through the front, 16
// clients, with and without pipelines of 16.
func BenchmarkFront(b *testing.B) {
	for _, pipe := range []int{1, 16} {
		for _, op := range []string{"GET", "SET", "HSET", "HGETALL"} {
			b.Run(op+"/P"+strconv.Itoa(pipe), func(b *testing.B) {
				c := benchFront(b, 16)
				fill(b, c)
				ctx := context.Background()
				var seq atomic.Int64
				b.SetParallelism(8) // 16 goroutines on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					p := c.Pipeline()
					for {
						for range pipe {
							if !pb.Next() {
								if p.Len() > 0 {
									if _, err := p.Exec(ctx); err != nil {
										b.Error(err)
									}
								}
								return
							}
							k := strconv.Itoa(int(seq.Add(1) % benchKeys))
							switch op {
							case "GET":
								p.Get(ctx, "key:"+k)
							case "SET":
								p.Set(ctx, "key:"+k, "yyy", 0)
							case "HSET":
								p.HSet(ctx, "hash:"+k, "a", "9")
							case "HGETALL":
								p.HGetAll(ctx, "hash:"+k)
							}
						}
						if _, err := p.Exec(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
