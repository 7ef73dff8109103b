package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/transport"
)

// EnvPrefix prefixes the environment variable of every setting:
// SESSIONMESH_DATA_DIR for --data-dir.
const EnvPrefix = "SESSIONMESH_"

// EnvConfig names the environment variable that gives the config file when
// --config does not.
const EnvConfig = EnvPrefix + "CONFIG"

// setting is one configurable value. Its flag is --name, its environment
// variable SESSIONMESH_NAME (upper case, '-' as '_') and its config file
// key name with '-' as '_'.
type setting struct {
	name  string
	arg   string // the value's name in the usage text
	usage string
	// list settings take several values: a flag repeated or given a
	// comma-separated list, a comma-separated environment variable, a JSON
	// array in the file. A list from a higher layer replaces a lower one.
	list bool
	set  func(c *Config, v []string) error // v has one element unless list
	show func(c Config) string             // the value, for the usage text
}

func (s setting) env() string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s setting) key() string { return strings.ReplaceAll(s.name, "-", "_") }

func str(dst func(*Config) *string) func(*Config, []string) error {
	return func(c *Config, v []string) error { *dst(c) = v[0]; return nil }
}

func strs(dst func(*Config) *[]string) func(*Config, []string) error {
	return func(c *Config, v []string) error { *dst(c) = slices.Clone(v); return nil }
}

func dur(dst func(*Config) *time.Duration) func(*Config, []string) error {
	return func(c *Config, v []string) error {
		d, err := time.ParseDuration(v[0])
		if err != nil {
			return fmt.Errorf("want a duration such as 30m or 12h: %w", err)
		}
		*dst(c) = d
		return nil
	}
}

// durAtLeast is dur for a setting with a least value, checked here so that
// the error names the setting and where it came from (Validate's own check
// stays, for configurations built in code).
func durAtLeast(dst func(*Config) *time.Duration, least time.Duration) func(*Config, []string) error {
	return func(c *Config, v []string) error {
		if err := dur(dst)(c, v); err != nil {
			return err
		}
		if d := *dst(c); d < least {
			return fmt.Errorf("%v is too short: want at least %v", d, least)
		}
		return nil
	}
}

var settings = []setting{
	{name: "data-dir", arg: "DIR", usage: "directory of the store and the identity key",
		set: str(func(c *Config) *string { return &c.DataDir }), show: func(c Config) string { return c.DataDir }},
	{name: "listen", arg: "MULTIADDRS", list: true, usage: "libp2p listen multiaddrs",
		set: strs(func(c *Config) *[]string { return &c.Listen }), show: func(c Config) string { return strings.Join(c.Listen, ",") }},
	{name: "bootstrap", arg: "MULTIADDRS", list: true, usage: "peers to dial, multiaddrs ending in /p2p/<peer id>",
		set: strs(func(c *Config) *[]string { return &c.Bootstrap }), show: func(c Config) string { return strings.Join(c.Bootstrap, ",") }},
	{name: "mesh", arg: "NAME", usage: "mesh name; peers of other meshes are ignored",
		set: str(func(c *Config) *string { return &c.Mesh }), show: func(c Config) string { return c.Mesh }},
	{name: "psk-file", arg: "FILE", usage: "pre-shared key file (sessionmesh keygen psk): only peers holding it can connect",
		set: str(func(c *Config) *string { return &c.PSKFile }), show: func(c Config) string { return c.PSKFile }},
	{name: "allowed-peers", arg: "PEER_IDS", list: true, usage: "peer ids allowed in the mesh (default: any)",
		set: strs(func(c *Config) *[]string { return &c.AllowedPeers }), show: func(c Config) string { return strings.Join(c.AllowedPeers, ",") }},
	{name: "region", arg: "REGION", usage: "region label announced to the other peers",
		set: str(func(c *Config) *string { return &c.Region }), show: func(c Config) string { return c.Region }},
	{name: "replicas", arg: "N", usage: "peers of each region that hold each session: all, or N for partial replication (docs/partial-replication.md; every peer of the mesh should use the same)",
		set: func(c *Config, v []string) error {
			if v[0] == "all" {
				c.Replicas = 0
				return nil
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n <= 0 {
				return fmt.Errorf("want all or a positive number of peers per region")
			}
			c.Replicas = n
			return nil
		}, show: func(c Config) string {
			if c.Replicas == 0 {
				return "all"
			}
			return strconv.Itoa(c.Replicas)
		}},
	{name: "durability", arg: "MODE", usage: "when a write is acknowledged: sync, group or none",
		set: func(c *Config, v []string) error {
			d, err := persist.ParseDurability(v[0])
			c.Durability = d
			return err
		}, show: func(c Config) string { return c.Durability.String() }},
	{name: "compression", arg: "ALGO", usage: "compression of the store's tables: none, snappy or zstd (docs/operations.md, Memory)",
		set: func(c *Config, v []string) error {
			a, err := persist.ParseCompression(v[0])
			c.Compression = a
			return err
		}, show: func(c Config) string { return c.Compression.String() }},
	{name: "cache-bytes", arg: "BYTES", usage: "memory for the store's cache of decoded sessions, e.g. 64MiB (0: no cache)",
		set: byteSize(func(c *Config) *int64 { return &c.CacheBytes }), show: func(c Config) string { return formatBytes(c.CacheBytes) }},
	{name: "memtable-bytes", arg: "BYTES", usage: "size of each of the store's memtables, e.g. 8MiB (at least 1MiB)",
		set: byteSize(func(c *Config) *int64 { return &c.MemTableBytes }), show: func(c Config) string { return formatBytes(c.MemTableBytes) }},
	{name: "encryption-key-file", arg: "FILE", usage: "key file for encryption at rest (sessionmesh keygen encryption-key)",
		set: str(func(c *Config) *string { return &c.EncryptionKeyFile }), show: func(c Config) string { return c.EncryptionKeyFile }},
	{name: "idle-timeout", arg: "DURATION", usage: "default idle timeout of new sessions",
		set: dur(func(c *Config) *time.Duration { return &c.IdleTimeout }), show: func(c Config) string { return c.IdleTimeout.String() }},
	{name: "lifetime", arg: "DURATION", usage: "default absolute lifetime of new sessions",
		set: dur(func(c *Config) *time.Duration { return &c.Lifetime }), show: func(c Config) string { return c.Lifetime.String() }},
	{name: "gc-interval", arg: "DURATION", usage: "period of garbage collection of expired sessions and tombstones (at least 1s)",
		set: durAtLeast(func(c *Config) *time.Duration { return &c.GCInterval }, MinGCInterval), show: func(c Config) string { return c.GCInterval.String() }},
	{name: "consistency-wait", arg: "DURATION", usage: "how long a request with X-Session-Version waits for this peer to reach it before 503 stale_session",
		set: dur(func(c *Config) *time.Duration { return &c.ConsistencyWait }), show: func(c Config) string { return c.ConsistencyWait.String() }},
	{name: "log-level", arg: "LEVEL", usage: "debug, info, warn or error",
		set:  func(c *Config, v []string) error { return c.LogLevel.UnmarshalText([]byte(v[0])) },
		show: func(c Config) string { return strings.ToLower(c.LogLevel.String()) }},
	{name: "log-format", arg: "FORMAT", usage: "text or json",
		set: str(func(c *Config) *string { return &c.LogFormat }), show: func(c Config) string { return c.LogFormat }},
	{name: "http", arg: "HOST:PORT", usage: "HTTP API address, host:port",
		set: str(func(c *Config) *string { return &c.HTTPAddr }), show: func(c Config) string { return c.HTTPAddr }},
	{name: "api-token-file", arg: "FILE", usage: "file holding the bearer token of /v1/ and /metrics; required unless --http is loopback",
		set: str(func(c *Config) *string { return &c.APITokenFile }), show: func(c Config) string { return c.APITokenFile }},
	{name: "shutdown-timeout", arg: "DURATION", usage: "bound on each graceful shutdown step",
		set: dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout }), show: func(c Config) string { return c.ShutdownTimeout.String() }},
	{name: "max-body-bytes", arg: "BYTES", usage: "largest HTTP request body",
		set: byteSize(func(c *Config) *int64 { return &c.MaxBodyBytes }), show: func(c Config) string { return formatBytes(c.MaxBodyBytes) }},
	{name: "redis", arg: "HOST:PORT", usage: "serve the Redis protocol on this address (docs/redis.md); off when empty; off loopback, AUTH with the API token is required",
		set: str(func(c *Config) *string { return &c.RedisAddr }), show: func(c Config) string { return c.RedisAddr }},
	{name: "redis-max-clients", arg: "N", usage: "most Redis client connections open at once",
		set: positiveInt(func(c *Config) *int { return &c.RedisMaxClients }), show: func(c Config) string { return strconv.Itoa(c.RedisMaxClients) }},
	{name: "redis-max-request-bytes", arg: "BYTES", usage: "largest Redis request",
		set: positiveInt(func(c *Config) *int { return &c.RedisMaxRequestBytes }), show: func(c Config) string { return strconv.Itoa(c.RedisMaxRequestBytes) }},
	{name: "redis-idle-timeout", arg: "DURATION", usage: "close Redis clients idle this long (0: never)",
		set: dur(func(c *Config) *time.Duration { return &c.RedisIdleTimeout }), show: func(c Config) string { return c.RedisIdleTimeout.String() }},
	{name: "ready-min-peers", arg: "N", usage: "keep /readyz at 503 while fewer than N peers are connected (0: ready whenever this peer can serve, even cut off from the others)",
		set: func(c *Config, v []string) error {
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 {
				return fmt.Errorf("want a number of peers, 0 or more")
			}
			c.ReadyMinPeers = n
			return nil
		}, show: func(c Config) string { return strconv.Itoa(c.ReadyMinPeers) }},
	{name: "failure-timeout", arg: "DURATION", usage: "a member silent this long is reported unreachable (pinged every quarter of it; at least 200ms)",
		set: durAtLeast(func(c *Config) *time.Duration { return &c.FailureTimeout }, transport.MinFailureTimeout), show: func(c Config) string { return c.FailureTimeout.String() }},
	{name: "forget-after", arg: "DURATION", usage: "a member unreachable this long is forgotten (bootstrap peers never are; 'never' or a negative duration: never; else at least 1m)",
		set: func(c *Config, v []string) error {
			if v[0] == "never" {
				c.ForgetAfter = -1
				return nil
			}
			if err := dur(func(c *Config) *time.Duration { return &c.ForgetAfter })(c, v); err != nil {
				return err
			}
			if c.ForgetAfter >= 0 && c.ForgetAfter < transport.MinForgetAfter {
				return fmt.Errorf("%v is too short: want at least %v, or never", c.ForgetAfter, transport.MinForgetAfter)
			}
			return nil
		}, show: func(c Config) string {
			if c.ForgetAfter < 0 {
				return "never"
			}
			return c.ForgetAfter.String()
		}},
}

// byteUnits are the suffixes byteSize accepts, largest first so that
// "MiB" is not read as "B".
var byteUnits = []struct {
	suffix string
	n      int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

// byteSize parses a number of bytes, plain or with a unit (64MiB, 1GB).
func byteSize(dst func(*Config) *int64) func(*Config, []string) error {
	return func(c *Config, v []string) error {
		s, mult := strings.TrimSpace(v[0]), int64(1)
		for _, u := range byteUnits {
			if num, ok := strings.CutSuffix(s, u.suffix); ok {
				s, mult = strings.TrimSpace(num), u.n
				break
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/mult {
			return fmt.Errorf("want a number of bytes such as 1048576 or 64MiB")
		}
		*dst(c) = n * mult
		return nil
	}
}

// formatBytes shows n with the largest binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range byteUnits[:3] {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func positiveInt(dst func(*Config) *int) func(*Config, []string) error {
	return func(c *Config, v []string) error {
		n, err := strconv.Atoi(v[0])
		if err != nil || n <= 0 {
			return fmt.Errorf("want a positive integer")
		}
		*dst(c) = n
		return nil
	}
}

// flagValue collects the raw values of one flag.
type flagValue struct {
	list bool
	vals []string
}

func (f *flagValue) String() string { return strings.Join(f.vals, ",") }

func (f *flagValue) Set(v string) error {
	if f.list {
		f.vals = append(f.vals, splitList(v)...)
	} else {
		f.vals = []string{v}
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Load builds the configuration of `sessionmesh serve` from its arguments,
// the environment (lookupEnv, os.LookupEnv in production) and the JSON file
// named by --config or SESSIONMESH_CONFIG. Each setting takes the first of:
// its flag, its environment variable, its key in the file, its default. It
// returns flag.ErrHelp for -h or --help, and validates the result.
func Load(args []string, lookupEnv func(string) (string, bool)) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	given := make(map[string]*flagValue, len(settings))
	for _, s := range settings {
		v := &flagValue{list: s.list}
		given[s.name] = v
		fs.Var(v, s.name, s.usage)
	}
	configFile := fs.String("config", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q", ErrConfig, fs.Arg(0))
	}
	flagSet := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { flagSet[f.Name] = true })

	cfg, err := loadFileAndEnv(*configFile, flagSet["config"], lookupEnv)
	if err != nil {
		return Config{}, err
	}
	for _, s := range settings {
		if !flagSet[s.name] {
			continue
		}
		vals := given[s.name].vals
		if !s.list && len(vals) == 0 {
			vals = []string{""}
		}
		if err := s.set(&cfg, vals); err != nil {
			return Config{}, fmt.Errorf("%w: flag --%s=%q: %v", ErrConfig, s.name, given[s.name].String(), err)
		}
	}
	return cfg, cfg.Validate()
}

// LoadFileAndEnv returns the configuration a `sessionmesh serve` started
// without flags would have: defaults, then the JSON file at path (when
// empty, the one SESSIONMESH_CONFIG names, if any), then the environment.
// It does not validate: the admin commands read only where the daemon's
// API is and its token file.
func LoadFileAndEnv(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	return loadFileAndEnv(path, path != "", lookupEnv)
}

// loadFileAndEnv applies the file at path, or SESSIONMESH_CONFIG's unless
// given is set, then the environment, to the defaults.
func loadFileAndEnv(path string, given bool, lookupEnv func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	if !given {
		path, _ = lookupEnv(EnvConfig)
	}
	if path != "" {
		if err := loadFile(&cfg, path); err != nil {
			return Config{}, err
		}
	}
	for _, s := range settings {
		raw, ok := lookupEnv(s.env())
		if !ok {
			continue
		}
		vals := []string{raw}
		if s.list {
			vals = splitList(raw)
		}
		if err := s.set(&cfg, vals); err != nil {
			return Config{}, fmt.Errorf("%w: environment %s=%q: %v", ErrConfig, s.env(), raw, err)
		}
	}
	return cfg, nil
}

// loadFile applies a JSON config file: an object whose keys are setting
// names with '_' for '-' ("data_dir"), strings for values, arrays of
// strings for lists. Unknown keys are errors.
func loadFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: config file: %v", ErrConfig, err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("%w: config file %s: %v", ErrConfig, path, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: config file %s: data after the JSON object", ErrConfig, path)
	}
	byKey := make(map[string]setting, len(settings))
	for _, s := range settings {
		byKey[s.key()] = s
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		s, ok := byKey[k]
		if !ok {
			return fmt.Errorf("%w: config file %s: unknown key %q", ErrConfig, path, k)
		}
		var vals []string
		if s.list {
			err = json.Unmarshal(raw[k], &vals)
		} else {
			var v string
			err = json.Unmarshal(raw[k], &v)
			vals = []string{v}
		}
		if err != nil {
			want := "a string"
			if s.list {
				want = "an array of strings"
			}
			return fmt.Errorf("%w: config file %s: %s: want %s", ErrConfig, path, k, want)
		}
		if err := s.set(cfg, vals); err != nil {
			return fmt.Errorf("%w: config file %s: %s: %v", ErrConfig, path, k, err)
		}
	}
	return nil
}

// PrintServeUsage writes the usage text of `sessionmesh serve`.
func PrintServeUsage(w io.Writer) {
	def := DefaultConfig()
	fmt.Fprint(w, `Usage: sessionmesh serve [flags]

Runs one sessionmesh peer: a session store replicated to the other peers of
the mesh, and an HTTP API for services in any language.

Every setting comes from, in order of precedence (flag > env > file >
default): its flag, its environment variable, its key in the JSON config
file (--config FILE or SESSIONMESH_CONFIG), its default. Lists (listen,
bootstrap, allowed-peers) take repeated flags or comma-separated values,
and JSON arrays in the file; a list from a higher source replaces a lower
one.

Flags:
  --config FILE
        JSON config file, an object of the file keys below
        env SESSIONMESH_CONFIG
`)
	for _, s := range settings {
		fmt.Fprintf(w, "  --%s %s\n        %s", s.name, s.arg, s.usage)
		if d := s.show(def); d != "" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintf(w, "\n        env %s, file key %s\n", s.env(), s.key())
	}
	fmt.Fprint(w, `
With no flags at all the peer keeps its data in ./sessionmesh-data (the
identity key in identity.key, the store in store/), listens for peers on
/ip4/127.0.0.1/tcp/7481 and serves HTTP on 127.0.0.1:7480. It prints its
peer id and full addresses: give one to a second peer's --bootstrap.
`)
}
