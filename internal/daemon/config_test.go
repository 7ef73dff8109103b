package daemon

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/transport"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each setting takes its flag, else its environment variable, else its
// key in the file, else its default.
func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "sessionmesh.json", `{
		"data_dir": "/from/file",
		"mesh": "file-mesh",
		"region": "file-region",
		"listen": ["/ip4/127.0.0.1/tcp/1001", "/ip4/127.0.0.1/tcp/1002"],
		"durability": "group",
		"idle_timeout": "5m",
		"log_format": "json"
	}`)
	vars := map[string]string{
		"SESSIONMESH_CONFIG":    file,
		"SESSIONMESH_MESH":      "env-mesh",
		"SESSIONMESH_REGION":    "env-region",
		"SESSIONMESH_LISTEN":    "/ip4/127.0.0.1/tcp/2001, /ip4/127.0.0.1/tcp/2002",
		"SESSIONMESH_LIFETIME":  "2h",
		"SESSIONMESH_LOG_LEVEL": "debug",
		"UNRELATED":             "x",
	}
	args := []string{"--region", "flag-region", "--listen", "/ip4/127.0.0.1/tcp/3001", "-listen=/ip4/127.0.0.1/tcp/3002,/ip4/127.0.0.1/tcp/3003", "--durability=none"}

	cfg, err := Load(args, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	for _, c := range []struct {
		setting   string
		got, want any
	}{
		{"region: flag over env and file", cfg.Region, "flag-region"},
		{"listen: flag list replaces env and file", cfg.Listen, []string{"/ip4/127.0.0.1/tcp/3001", "/ip4/127.0.0.1/tcp/3002", "/ip4/127.0.0.1/tcp/3003"}},
		{"durability: flag over file", cfg.Durability, persist.DurabilityNone},
		{"mesh: env over file", cfg.Mesh, "env-mesh"},
		{"lifetime: env over default", cfg.Lifetime, 2 * time.Hour},
		{"log level: env over default", cfg.LogLevel, slog.LevelDebug},
		{"data dir: file over default", cfg.DataDir, "/from/file"},
		{"idle timeout: file over default", cfg.IdleTimeout, 5 * time.Minute},
		{"log format: file over default", cfg.LogFormat, "json"},
		{"http: default", cfg.HTTPAddr, def.HTTPAddr},
		{"bootstrap: default", len(cfg.Bootstrap), 0},
		{"shutdown timeout: default", cfg.ShutdownTimeout, def.ShutdownTimeout},
	} {
		if s, ok := c.want.([]string); ok {
			if !slices.Equal(c.got.([]string), s) {
				t.Errorf("%s: got %v, want %v", c.setting, c.got, c.want)
			}
		} else if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.setting, c.got, c.want)
		}
	}

	// The env list replaces the file's when no flag gives one.
	cfg, err = Load(nil, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/ip4/127.0.0.1/tcp/2001", "/ip4/127.0.0.1/tcp/2002"}; !slices.Equal(cfg.Listen, want) {
		t.Errorf("listen from env: %v, want %v", cfg.Listen, want)
	}

	// --config beats SESSIONMESH_CONFIG.
	other := writeFile(t, "other.json", `{"data_dir": "/from/other"}`)
	cfg, err = Load([]string{"--config", other}, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/other" || cfg.IdleTimeout != def.IdleTimeout {
		t.Errorf("--config: data dir %q, idle %v", cfg.DataDir, cfg.IdleTimeout)
	}

	// The membership and readiness settings, from each source.
	cfg, err = Load([]string{"--failure-timeout", "2s", "--ready-min-peers", "2"},
		env(map[string]string{"SESSIONMESH_CONFIG": writeFile(t, "m.json", `{"forget_after": "never"}`)}))
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := cfg.transportConfig(nil); cfg.ReadyMinPeers != 2 || tc.FailureTimeout != 2*time.Second || tc.ForgetAfter >= 0 {
		t.Errorf("membership settings: ready min %d, transport failure timeout %v, forget after %v", cfg.ReadyMinPeers, tc.FailureTimeout, tc.ForgetAfter)
	}
	if def.FailureTimeout != transport.DefaultFailureTimeout || def.ForgetAfter != transport.DefaultForgetAfter || def.ReadyMinPeers != 0 {
		t.Errorf("defaults: %+v", def)
	}

	// The collection period, from each source, and its default.
	if def.GCInterval != node.DefaultConfig().GCInterval {
		t.Errorf("default gc interval %v", def.GCInterval)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{[]string{"--gc-interval", "2s"}, nil, 2 * time.Second},
		{nil, map[string]string{"SESSIONMESH_GC_INTERVAL": "90s"}, 90 * time.Second},
		{nil, map[string]string{"SESSIONMESH_CONFIG": writeFile(t, "gc.json", `{"gc_interval": "5m"}`)}, 5 * time.Minute},
	} {
		cfg, err := Load(c.args, env(c.env))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.GCInterval != c.want {
			t.Errorf("gc interval from %v %v: %v, want %v", c.args, c.env, cfg.GCInterval, c.want)
		}
	}

	// The storage settings, from each source, with units, and their
	// defaults (persist's).
	if d := persist.DefaultOptions(""); def.Compression != d.Compression || def.CacheBytes != d.CacheBytes || def.MemTableBytes != d.MemTableSize {
		t.Errorf("storage defaults: compression %v, cache %d, memtable %d", def.Compression, def.CacheBytes, def.MemTableBytes)
	}
	cfg, err = Load([]string{"--compression", "zstd", "--cache-bytes", "0"},
		env(map[string]string{"SESSIONMESH_MEMTABLE_BYTES": "8MiB", "SESSIONMESH_CONFIG": writeFile(t, "s.json", `{"max_body_bytes": "2MB"}`)}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Compression != persist.CompressionZSTD || cfg.CacheBytes != 0 || cfg.MemTableBytes != 8<<20 || cfg.MaxBodyBytes != 2_000_000 {
		t.Errorf("storage settings: compression %v, cache %d, memtable %d, max body %d", cfg.Compression, cfg.CacheBytes, cfg.MemTableBytes, cfg.MaxBodyBytes)
	}

	// Nothing at all gives the defaults.
	cfg, err = Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Listen, def.Listen) || cfg.DataDir != DefaultDataDir || cfg.HTTPAddr != DefaultHTTPAddr {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	good := writeFile(t, "good.json", `{"mesh": "m"}`)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"unknown flag", []string{"--nope"}, nil, "", "flag provided but not defined"},
		{"positional", []string{"extra"}, nil, "", "unexpected argument"},
		{"bad duration flag", []string{"--idle-timeout", "soon"}, nil, "", "--idle-timeout"},
		{"bad duration env", nil, map[string]string{"SESSIONMESH_LIFETIME": "forever"}, "", "SESSIONMESH_LIFETIME"},
		{"bad durability", []string{"--durability", "maybe"}, nil, "", "unknown durability"},
		{"bad log level", nil, map[string]string{"SESSIONMESH_LOG_LEVEL": "loud"}, "", "SESSIONMESH_LOG_LEVEL"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "", "log format"},
		{"zero lifetime", []string{"--lifetime", "0s"}, nil, "", "must be positive"},
		{"bad max body", []string{"--max-body-bytes", "-1"}, nil, "", "max-body-bytes"},
		{"bad compression", []string{"--compression", "lz4"}, nil, "", "unknown compression"},
		{"bad byte size", nil, map[string]string{"SESSIONMESH_CACHE_BYTES": "lots"}, "", "SESSIONMESH_CACHE_BYTES"},
		{"bad byte unit", []string{"--cache-bytes", "64MiBs"}, nil, "", "cache-bytes"},
		{"memtable too small", []string{"--memtable-bytes", "64KiB"}, nil, "", "memtable bytes"},
		{"memtable too large", []string{"--memtable-bytes", "5GiB"}, nil, "", "want at most"},
		{"bad ready min peers", []string{"--ready-min-peers", "-1"}, nil, "", "ready-min-peers"},
		// A value out of range names the setting and its source.
		{"failure timeout too short", []string{"--failure-timeout", "10ms"}, nil, "", `flag --failure-timeout="10ms": 10ms is too short: want at least 200ms`},
		{"gc interval too short", []string{"--gc-interval", "10ms"}, nil, "", `flag --gc-interval="10ms": 10ms is too short`},
		{"gc interval too short in file", nil, nil, `{"gc_interval": "10ms"}`, "gc_interval"},
		{"bad gc interval", nil, map[string]string{"SESSIONMESH_GC_INTERVAL": "often"}, "", "SESSIONMESH_GC_INTERVAL"},
		{"forget after too short", nil, map[string]string{"SESSIONMESH_FORGET_AFTER": "5s"}, "", `environment SESSIONMESH_FORGET_AFTER="5s": 5s is too short`},
		{"public http without token", []string{"--http", "0.0.0.0:7480"}, nil, "", "not a loopback address"},
		{"all interfaces without token", []string{"--http", ":7480"}, nil, "", "not a loopback address"},
		{"hostname without token", nil, map[string]string{"SESSIONMESH_HTTP": "example.com:80"}, "", "not a loopback address"},
		{"bad http", []string{"--http", "localhost"}, nil, "", "http address"},
		{"bad listen", []string{"--listen", "tcp://x"}, nil, "", "listen address"},
		{"bootstrap without id", []string{"--bootstrap", "/ip4/127.0.0.1/tcp/7481"}, nil, "", "/p2p/<id>"},
		{"bad allowed peer", []string{"--allowed-peers", "alice"}, nil, "", "allowed peer"},
		{"bad region", []string{"--region", "eu west"}, nil, "", "region"},
		{"missing file", []string{"--config", "/does/not/exist.json"}, nil, "", "config file"},
		{"unknown key", nil, nil, `{"data-dir": "x"}`, "unknown key"},
		{"string for list", nil, nil, `{"listen": "/ip4/127.0.0.1/tcp/1"}`, "want an array of strings"},
		{"number for string", nil, nil, `{"mesh": 1}`, "want a string"},
		{"trailing data", nil, nil, `{} {}`, "after the JSON object"},
		{"bad json", nil, nil, `{"mesh": `, "config file"},
		{"bad value in file", nil, nil, `{"idle_timeout": "1 hour"}`, "idle_timeout"},
		{"env config ignored under flag", []string{"--config", good}, map[string]string{"SESSIONMESH_CONFIG": "/does/not/exist"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := tc.env
			if tc.file != "" {
				vars = map[string]string{"SESSIONMESH_CONFIG": writeFile(t, "c.json", tc.file)}
			}
			_, err := Load(tc.args, env(vars))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v, want one containing %q wrapping ErrConfig", err, tc.want)
			}
		})
	}

	if _, err := Load([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	// A non-loopback address is fine with a token file.
	if _, err := Load([]string{"--http", "0.0.0.0:7480", "--api-token-file", "/some/file"}, env(nil)); err != nil {
		t.Errorf("public http with token file: %v", err)
	}
}

// The usage text lists every setting with its environment variable and
// file key.
func TestServeUsage(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	PrintServeUsage(&b)
	for _, s := range settings {
		for _, want := range []string{"--" + s.name + " ", s.env(), s.key()} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("usage lacks %q", want)
			}
		}
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:7480": true, "localhost:80": true, "[::1]:7480": true, "127.1.2.3:0": true,
		"0.0.0.0:7480": false, ":7480": false, "[::]:7480": false, "10.0.0.1:7480": false, "example.com:80": false,
	} {
		got, err := IsLoopback(addr)
		if err != nil || got != want {
			t.Errorf("IsLoopback(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:http", "127.0.0.1:99999"} {
		if _, err := IsLoopback(bad); err == nil {
			t.Errorf("IsLoopback(%q): no error", bad)
		}
	}
}

// The banner's "add a peer" line gives a command that runs: under go run
// there is no sessionmesh on the PATH.
func TestSelfCommand(t *testing.T) {
	for arg0, want := range map[string]string{
		"/tmp/go-build2311/b001/exe/sessionmesh": "go run ./cmd/sessionmesh",
		"/usr/local/bin/sessionmesh":             "sessionmesh",
		"./sessionmesh":                          "sessionmesh",
	} {
		if got := selfCommand(arg0); got != want {
			t.Errorf("selfCommand(%q) = %q, want %q", arg0, got, want)
		}
	}
}
