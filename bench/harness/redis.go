package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// newRedis connects to the redis-server at addr with a pool large enough
// for every worker to hold a connection.
func newRedis(ctx context.Context, addr string, pool int) (*redis.Client, error) {
	c := redis.NewClient(&redis.Options{
		Addr:                     addr,
		PoolSize:                 pool,
		MinIdleConns:             pool,
		DisableIdentity:          true,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return c, nil
}

// waitReplicas waits until the primary c has n replicas online.
func waitReplicas(ctx context.Context, c *redis.Client, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		info, err := redisInfo(ctx, c, "replication")
		if err != nil {
			return fmt.Errorf("redis replication: %w", err)
		}
		online := 0
		for k, v := range info {
			if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
				online++
			}
		}
		if info["role"] == "master" && online >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis primary: %d of %d replicas online after %v (role %s)", online, n, within, info["role"])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// redisInfo returns the fields of INFO section.
func redisInfo(ctx context.Context, c *redis.Client, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

func redisInt(info map[string]string, key string) (int64, error) {
	v, ok := info[key]
	if !ok {
		return 0, fmt.Errorf("redis: INFO has no %s", key)
	}
	return strconv.ParseInt(v, 10, 64)
}

// loadRedisSessions writes count standard sessions (seq base..) as hashes
// with an idle expiry, pipelined, and returns their tokens.
func loadRedisSessions(ctx context.Context, c *redis.Client, base, count, conc int) ([]string, error) {
	tokens := make([]string, count)
	for i := range tokens {
		tokens[i] = redisToken()
	}
	const batch = 500
	errs := make(chan error, conc)
	for w := range conc {
		go func() {
			for lo := w * batch; lo < count; lo += conc * batch {
				p := c.Pipeline()
				for i := lo; i < min(lo+batch, count); i++ {
					k := redisKey(tokens[i])
					p.HSet(ctx, k, redisArgs(sessionData(base+i))...)
					p.Expire(ctx, k, 30*time.Minute)
				}
				if _, err := p.Exec(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return tokens, first
}

// checkRedisSession reports errLost unless the hash of token is the
// standard session seq.
func checkRedisSession(m map[string]string, seq int) error {
	want := sessionData(seq)
	if len(m) != len(want) {
		return fmt.Errorf("%w: redis session %d has %d fields, want %d", errLost, seq, len(m), len(want))
	}
	for k, v := range want {
		if m[k] != string(v) {
			return fmt.Errorf("%w: redis session %d: field %s differs", errLost, seq, k)
		}
	}
	return nil
}
