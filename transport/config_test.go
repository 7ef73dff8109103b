package transport

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, id := identity(t)
	_, other := identity(t)
	boot := "/ip4/127.0.0.1/tcp/4001/p2p/" + id.String()
	psk := bytes.Repeat([]byte{1}, PSKSize)

	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero value", func(c *Config) { *c = Config{} }, ""},
		{"bootstrap", func(c *Config) { c.Bootstrap = []string{boot} }, ""},
		{"quic", func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }, ""},
		{"psk", func(c *Config) { c.PSK = psk }, ""},
		{"allowlist", func(c *Config) { c.AllowedPeers = []peer.ID{id}; c.Bootstrap = []string{boot} }, ""},
		{"short psk", func(c *Config) { c.PSK = psk[:16] }, "PSK is 16 bytes"},
		{"psk with quic", func(c *Config) {
			c.PSK = psk
			c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		}, "QUIC cannot be used with a PSK"},
		{"psk with quic bootstrap", func(c *Config) {
			c.PSK = psk
			c.Bootstrap = []string{"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + id.String()}
		}, "PSK network is TCP only"},
		{"websocket", func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0/ws"} }, "only /tcp and"},
		{"bad listen", func(c *Config) { c.ListenAddrs = []string{"tcp://localhost"} }, "listen address"},
		{"bootstrap without id", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, "/p2p/<id>"},
		{"bootstrap outside allowlist", func(c *Config) {
			c.AllowedPeers = []peer.ID{other}
			c.Bootstrap = []string{boot}
		}, "not in AllowedPeers"},
		{"bad allowed id", func(c *Config) { c.AllowedPeers = []peer.ID{""} }, "allowed peer"},
		{"mesh with slash", func(c *Config) { c.Mesh = "a/b" }, "mesh name"},
		{"long mesh", func(c *Config) { c.Mesh = strings.Repeat("m", 65) }, "mesh name"},
		{"negative size", func(c *Config) { c.MaxMessageBytes = -1 }, "MaxMessageBytes"},
		{"huge size", func(c *Config) { c.MaxMessageBytes = MaxMaxMessageBytes + 1 }, "MaxMessageBytes"},
		{"mdns on loopback", func(c *Config) { c.MDNS = true }, "MDNS needs"},
		{"mdns on lan", func(c *Config) { c.MDNS = true; c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			case err != nil && !errors.Is(err, ErrInvalidConfig):
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}

	// All problems are reported at once.
	cfg := Config{PSK: []byte{1}, Mesh: "a b"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "PSK") || !strings.Contains(err.Error(), "mesh name") {
		t.Errorf("want both problems reported, got %v", err)
	}
	if _, err := New(t.Context(), cfg, &recorder{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with an invalid config: %v", err)
	}
	if _, err := New(t.Context(), DefaultConfig(), nil); err == nil {
		t.Error("New accepted a nil Handler")
	}
	if got := (Config{Mesh: "team"}).Topic(); got != "/sessionmesh/team/deltas/1" {
		t.Errorf("topic %q", got)
	}
}
