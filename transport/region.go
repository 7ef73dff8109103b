package transport

import (
	"runtime/debug"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// modulePath is the module whose version the user agent carries.
const modulePath = "github.com/sessionmesh/sessionmesh"

// regionKey prefixes the region in the identify user agent.
const regionKey = "region="

// agentString is the user agent this host announces in libp2p identify:
// "sessionmesh/<version>", followed by " region=<region>" when one is set.
func agentString(region string) string {
	s := userAgent + "/" + moduleVersion()
	if region != "" {
		s += " " + regionKey + region
	}
	return s
}

// moduleVersion returns the version of this module in the running binary,
// or "devel" when it is not known (a build from a work tree).
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := ""
	if bi.Main.Path == modulePath {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			v = d.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
}

// parseRegion returns the region in a user agent written by agentString,
// or "" when it carries none or is not a sessionmesh agent.
func parseRegion(agent string) string {
	fields := strings.Fields(agent)
	if len(fields) == 0 || (fields[0] != userAgent && !strings.HasPrefix(fields[0], userAgent+"/")) {
		return ""
	}
	for _, f := range fields[1:] {
		if r, ok := strings.CutPrefix(f, regionKey); ok && meshNameRE.MatchString(r) {
			return r
		}
	}
	return ""
}

// PeerRegion returns the Config.Region that peer id announced, or "" if it
// announced none, is not a sessionmesh host, or has not completed the
// identify exchange yet (it runs right after a connection opens). The
// peerstore keeps it for a while after the peer disconnects.
func (t *Transport) PeerRegion(id peer.ID) string {
	if t.closed.Load() {
		return ""
	}
	return t.peerRegion(id)
}

func (t *Transport) peerRegion(id peer.ID) string {
	v, err := t.h.Peerstore().Get(id, "AgentVersion")
	if err != nil {
		return ""
	}
	agent, _ := v.(string)
	return parseRegion(agent)
}

// PeerAddrs returns the addresses this host knows for peer id, without
// /p2p: those it announced in identify and those it was dialled at. It is
// empty for an unknown peer.
func (t *Transport) PeerAddrs(id peer.ID) []multiaddr.Multiaddr {
	if t.closed.Load() {
		return nil
	}
	return t.h.Peerstore().Addrs(id)
}
