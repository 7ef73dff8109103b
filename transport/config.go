package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	madns "github.com/multiformats/go-multiaddr-dns"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/sessionmesh/sessionmesh/transport/timing"
)

// Defaults used by DefaultConfig and by New for fields left at their zero
// value.
const (
	// DefaultMesh is the mesh name used when Config.Mesh is empty.
	DefaultMesh = "default"

	// DefaultMaxMessageBytes bounds a gossip message and a direct frame
	// when Config.MaxMessageBytes is zero: 1 MiB, gossipsub's own default.
	DefaultMaxMessageBytes = 1 << 20

	// MaxMaxMessageBytes is the largest accepted Config.MaxMessageBytes.
	MaxMaxMessageBytes = 64 << 20

	// PSKSize is the length of a private-network key.
	PSKSize = 32

	// DefaultFailureTimeout: a member silent for 4 s is declared lost
	// (pinged every second, so a cut is noticed within 4 s).
	DefaultFailureTimeout = timing.FailureTimeout

	// DefaultRedialInterval: an absent member is dialled about once a
	// second, so a healed link is back within about a second.
	DefaultRedialInterval = timing.RedialInterval

	// DefaultDialTimeout bounds one dial attempt: long enough for a TCP and
	// security handshake over a link of up to ~500 ms round trip, short
	// enough that an attempt whose SYN was lost in a cut does not delay
	// the next one much.
	DefaultDialTimeout = timing.DialTimeout

	// DefaultForgetAfter: a member unreachable for 72 hours is forgotten.
	// Long enough to ride out a long weekend's outage of a whole region
	// (its members are redialled all along and come back by themselves);
	// short enough that a decommissioned peer leaves the member list,
	// /v1/peers and the probes within days.
	DefaultForgetAfter = 72 * time.Hour
	// MinFailureTimeout and MinForgetAfter are the least FailureTimeout and
	// (unless negative) ForgetAfter.
	MinFailureTimeout = 200 * time.Millisecond
	MinForgetAfter    = time.Minute
	// DefaultMaxUnconnectedMembers: a mesh of up to a thousand peers
	// learns all of them from one record exchange.
	DefaultMaxUnconnectedMembers = 1024
)

// DefaultListenAddrs is used when Config.ListenAddrs is empty: TCP on the
// loopback interface, on a port chosen by the kernel. Nodes that must be
// reachable from other machines list their own addresses.
var DefaultListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}

var meshNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Config configures a Transport. Start from DefaultConfig; a zero field
// means its default, as documented on the field.
type Config struct {
	// DataDir holds the identity key in DataDir/identity.key, created with
	// mode 0600 on first start and reused afterwards so that the peer id
	// survives restarts. Empty means an ephemeral key (a new peer id on
	// every start).
	DataDir string

	// ListenAddrs are the multiaddrs to listen on. Only TCP
	// (/ip4/.../tcp/N) and, without a PSK, QUIC (/ip4/.../udp/N/quic-v1)
	// are supported. Default DefaultListenAddrs (loopback only).
	ListenAddrs []string

	// Bootstrap are multiaddrs ending in /p2p/<id>. They are members from
	// the start: dialled at once and redialled every RedialInterval
	// whenever no connection to them is open. Through any one of them the
	// host learns every other member (signed peer records). Bootstrap peers
	// are never forgotten automatically.
	//
	// An entry may also be a bare /dnsaddr/<name> (no /p2p), for
	// orchestrated deployments: the TXT records of _dnsaddr.<name>, each
	// "dnsaddr=<multiaddr ending in /p2p/<id>>" (libp2p's dnsaddr scheme),
	// list peers that become members. The name is resolved at start and
	// every minute; unlike the other entries, its peers are forgotten
	// after ForgetAfter like learned members.
	Bootstrap []string

	// FailureTimeout is how long a connected member may give no sign of
	// life before it is declared lost and its connections are closed
	// (Handler.PeerDown, Member.Connected false). Members are pinged every
	// FailureTimeout/4 over libp2p's ping protocol; an answer or any direct
	// frame received counts. A cut is thus noticed within FailureTimeout.
	// Raise it on links whose round trip under load can exceed a few
	// seconds. Default DefaultFailureTimeout; at least 200ms.
	FailureTimeout time.Duration

	// RedialInterval is the pause between two dials of a member that is not
	// connected (jittered by ±20%): the bound on how long a healed link
	// stays down, and the probe cost (one dial per interval per absent
	// member). A member that closes our connections right after they open
	// (it refuses us) is redialled at twice the interval for each refusal
	// in a row, up to 30 s. Default DefaultRedialInterval; at least 100ms.
	RedialInterval time.Duration

	// DialTimeout bounds one dial attempt (TCP and security handshake).
	// Default DefaultDialTimeout; at least 100ms.
	DialTimeout time.Duration

	// ForgetAfter is how long a member (other than a bootstrap peer) may
	// stay unreachable before it is forgotten: no longer dialled, listed or
	// kept in the member list. The time counts from its last sign of life
	// or from this host's start, whichever is later, so a host that was
	// down for long does not forget everyone on restart. Default
	// DefaultForgetAfter; negative means never; else at least a minute.
	ForgetAfter time.Duration

	// MaxUnconnectedMembers bounds the members this host has never been
	// connected to that it takes from other members' peer records: a
	// record naming a new peer beyond it is ignored (counted as
	// RecordTooMany) until some of them connect or are forgotten. Each
	// such member is dialled until ForgetAfter, so without a bound one
	// peer passing on records of made-up identities made this host dial
	// thousands of them for three days. Bootstrap peers, the persisted
	// member list and peers that connect are always taken. Default
	// DefaultMaxUnconnectedMembers.
	MaxUnconnectedMembers int

	// Mesh names the mesh: the gossip topic is "/sessionmesh/<Mesh>/deltas/1"
	// and mDNS only finds hosts of the same mesh. Letters, digits, '.', '_'
	// and '-', at most 64 characters. Default DefaultMesh.
	Mesh string

	// PSK is an optional 32-byte private-network key: only hosts holding
	// the same key can complete a connection. With a PSK the transport runs
	// on TCP only (libp2p refuses a PSK on QUIC).
	PSK []byte

	// AllowedPeers is an optional allowlist. When non-empty only these
	// peers (and this host) can connect, take part in the gossip topic, or
	// originate gossip that is accepted.
	AllowedPeers []peer.ID

	// Region is an optional label for where this host runs ("eu-west",
	// "us-east-1"): 1-64 letters, digits, '.', '_' and '-', starting with a
	// letter or digit. Hosts announce it to each other in the libp2p identify
	// exchange (PeerRegion); it is informational and changes no behaviour.
	// Default "" (none).
	Region string

	// MDNS turns on LAN discovery (off by default). It needs a listen
	// address that is not loopback.
	MDNS bool

	// MaxMessageBytes bounds the payload of a gossip message and of a
	// direct frame. Default DefaultMaxMessageBytes.
	MaxMessageBytes int

	// Logger receives the transport's logs. Nil discards them.
	Logger *slog.Logger

	// ValidateGossip, when set, is called on every gossip message from
	// another host before it is accepted and forwarded; from is the
	// message's author (its signature has been checked). Return nil to
	// accept. A non-nil error rejects the message: it is neither delivered
	// nor forwarded, it is counted in Stats.GossipRejected[RejectInvalid],
	// and logged (at most about one line a second). It may be called
	// concurrently and should be quick. Our own messages are not passed to
	// it. (It is not called Validate: that is the method checking the
	// configuration.)
	ValidateGossip func(from peer.ID, data []byte) error
	// DecodeGossip, when set, is ValidateGossip that also returns the
	// decoded message: a handler implementing DecodedGossipHandler gets it
	// with the message, so a message is decoded once, not once to validate
	// and again to use (pubsub's ValidatorData carries it). It runs after
	// ValidateGossip when both are set.
	DecodeGossip func(from peer.ID, data []byte) (any, error)

	// noRecords (tests only) ignores the records other members pass on,
	// so that a test can keep a star topology.
	noRecords bool

	// resolver (tests only) resolves /dnsaddr bootstrap names instead of
	// the system's DNS.
	resolver *madns.Resolver
}

// DefaultConfig returns a configuration with every default filled in: an
// ephemeral identity listening on loopback TCP, mesh DefaultMesh, 1 MiB
// messages, no bootstrap peers, no mDNS, no PSK, no allowlist, and the
// default failure detection, redial and forget timings.
func DefaultConfig() Config {
	return Config{
		ListenAddrs:     append([]string(nil), DefaultListenAddrs...),
		Mesh:            DefaultMesh,
		MaxMessageBytes: DefaultMaxMessageBytes,
		FailureTimeout:  DefaultFailureTimeout,
		RedialInterval:  DefaultRedialInterval,
		DialTimeout:     DefaultDialTimeout,
		ForgetAfter:     DefaultForgetAfter,

		MaxUnconnectedMembers: DefaultMaxUnconnectedMembers,
	}
}

// withDefaults returns a copy of c with zero fields replaced by defaults.
func (c Config) withDefaults() Config {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = append([]string(nil), DefaultListenAddrs...)
	}
	if c.Mesh == "" {
		c.Mesh = DefaultMesh
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.FailureTimeout == 0 {
		c.FailureTimeout = DefaultFailureTimeout
	}
	if c.RedialInterval == 0 {
		c.RedialInterval = DefaultRedialInterval
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ForgetAfter == 0 {
		c.ForgetAfter = DefaultForgetAfter
	}
	if c.MaxUnconnectedMembers <= 0 {
		c.MaxUnconnectedMembers = DefaultMaxUnconnectedMembers
	}
	return c
}

// Topic returns the gossip topic of the configured mesh.
func (c Config) Topic() string {
	mesh := c.Mesh
	if mesh == "" {
		mesh = DefaultMesh
	}
	return "/sessionmesh/" + mesh + "/deltas/1"
}

// Validate checks the configuration, with defaults applied to zero fields,
// and reports every problem found. Each error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated Config with its addresses parsed.
type resolved struct {
	Config
	listen    []multiaddr.Multiaddr
	bootstrap []peer.AddrInfo
	dnsaddrs  []multiaddr.Multiaddr // bare /dnsaddr/<name> entries of Bootstrap
	allowed   map[peer.ID]struct{}
}

func (c Config) resolve() (*resolved, error) {
	c = c.withDefaults()
	r := &resolved{Config: c}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}

	if !meshNameRE.MatchString(c.Mesh) {
		bad("mesh name %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Mesh)
	}
	if c.Region != "" && !meshNameRE.MatchString(c.Region) {
		bad("region %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Region)
	}
	if c.MaxMessageBytes < 0 || c.MaxMessageBytes > MaxMaxMessageBytes {
		bad("MaxMessageBytes %d: want 1..%d", c.MaxMessageBytes, MaxMaxMessageBytes)
	}
	if c.FailureTimeout < MinFailureTimeout {
		bad("FailureTimeout %v: want at least %v", c.FailureTimeout, MinFailureTimeout)
	}
	if c.RedialInterval < 100*time.Millisecond {
		bad("RedialInterval %v: want at least 100ms", c.RedialInterval)
	}
	if c.DialTimeout < 100*time.Millisecond {
		bad("DialTimeout %v: want at least 100ms", c.DialTimeout)
	}
	if c.ForgetAfter > 0 && c.ForgetAfter < MinForgetAfter {
		bad("ForgetAfter %v: want at least %v, or negative for never", c.ForgetAfter, MinForgetAfter)
	}
	if c.PSK != nil && len(c.PSK) != PSKSize {
		bad("PSK is %d bytes, want %d", len(c.PSK), PSKSize)
	}

	if len(c.AllowedPeers) > 0 {
		r.allowed = make(map[peer.ID]struct{}, len(c.AllowedPeers))
		for _, id := range c.AllowedPeers {
			if err := id.Validate(); err != nil {
				bad("allowed peer %q: %v", string(id), err)
				continue
			}
			r.allowed[id] = struct{}{}
		}
	}

	nonLoopback := false
	for _, s := range c.ListenAddrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			bad("listen address %q: %v", s, err)
			continue
		}
		switch kind := addrKind(a); {
		case kind == "":
			bad("listen address %q: only /tcp and /udp/N/quic-v1 are supported", s)
			continue
		case kind == "quic" && c.PSK != nil:
			bad("listen address %q: QUIC cannot be used with a PSK (private networks are TCP only)", s)
			continue
		}
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err == nil {
			bad("listen address %q must not contain /p2p", s)
			continue
		}
		if !manet.IsIPLoopback(a) {
			nonLoopback = true
		}
		r.listen = append(r.listen, a)
	}
	if c.MDNS && !nonLoopback {
		bad("MDNS needs a listen address that is not loopback")
	}

	var bootAddrs []multiaddr.Multiaddr
	for _, s := range c.Bootstrap {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			bad("bootstrap address %q: %v", s, err)
			continue
		}
		if isDNSAddr(a) {
			if len(a) != 1 {
				bad("bootstrap address %q: want /dnsaddr/<name> alone, or a multiaddr ending in /p2p/<id>", s)
				continue
			}
			r.dnsaddrs = append(r.dnsaddrs, a)
			continue
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			bad("bootstrap address %q: want a multiaddr ending in /p2p/<id>, or /dnsaddr/<name>: %v", s, err)
			continue
		}
		if r.allowed != nil {
			if _, ok := r.allowed[ai.ID]; !ok {
				bad("bootstrap peer %s is not in AllowedPeers", ai.ID)
				continue
			}
		}
		if c.PSK != nil {
			for _, x := range ai.Addrs {
				if addrKind(x) == "quic" {
					bad("bootstrap address %q is QUIC, but a PSK network is TCP only", s)
				}
			}
		}
		bootAddrs = append(bootAddrs, a)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(bootAddrs...)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap: %v", ErrInvalidConfig, err)
	}
	r.bootstrap = infos
	return r, nil
}

// addrKind returns "tcp" or "quic" for the transports this package
// configures, and "" for anything else.
func addrKind(a multiaddr.Multiaddr) string {
	if _, err := a.ValueForProtocol(multiaddr.P_QUIC_V1); err == nil {
		if _, err := a.ValueForProtocol(multiaddr.P_WEBTRANSPORT); err == nil {
			return ""
		}
		return "quic"
	}
	if _, err := a.ValueForProtocol(multiaddr.P_TCP); err == nil {
		if _, err := a.ValueForProtocol(multiaddr.P_WS); err == nil {
			return ""
		}
		if _, err := a.ValueForProtocol(multiaddr.P_WSS); err == nil {
			return ""
		}
		return "tcp"
	}
	return ""
}
