package daemon

import (
	"errors"
	"testing"

	"github.com/sessionmesh/sessionmesh/redisfront"
)

// The Redis front's settings come from flags, environment and file like
// every other; it is off by default, and off loopback it needs a token.
func TestRedisSettings(t *testing.T) {
	t.Parallel()
	cfg, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisAddr != "" || cfg.RedisMaxClients != redisfront.DefaultMaxClients || cfg.RedisIdleTimeout != redisfront.DefaultIdleTimeout {
		t.Errorf("defaults: %+v", cfg)
	}
	file := writeFile(t, "c.json", `{"redis": "127.0.0.1:6390", "redis_idle_timeout": "0s", "redis_max_request_bytes": "65536"}`)
	cfg, err = Load([]string{"--config", file, "--redis", "127.0.0.1:6380"}, env(map[string]string{"SESSIONMESH_REDIS_MAX_CLIENTS": "7"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisAddr != "127.0.0.1:6380" || cfg.RedisMaxClients != 7 || cfg.RedisIdleTimeout != 0 || cfg.RedisMaxRequestBytes != 65536 {
		t.Errorf("flag > env > file: %+v", cfg)
	}
	for _, args := range [][]string{
		{"--redis", "0.0.0.0:6380"},
		{"--redis", "nonsense"},
		{"--redis-max-clients", "0"},
		{"--redis-idle-timeout", "-1s"},
	} {
		if _, err := Load(args, env(nil)); !errors.Is(err, ErrConfig) {
			t.Errorf("%v: %v, want a config error", args, err)
		}
	}
	if _, err := Load([]string{"--redis", "0.0.0.0:6380", "--api-token-file", "/some/file"}, env(nil)); err != nil {
		t.Errorf("non-loopback with a token: %v", err)
	}
}
