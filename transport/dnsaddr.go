package transport

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	madns "github.com/multiformats/go-multiaddr-dns"
)

// Resolution of /dnsaddr bootstrap entries.
const (
	dnsRefresh = time.Minute      // how often the names are resolved again
	dnsTimeout = 10 * time.Second // bound on one resolution
)

// isDNSAddr reports whether a is a bare /dnsaddr/<name> (without /p2p):
// a name whose TXT records at _dnsaddr.<name> list the peers, each as
// "dnsaddr=<multiaddr ending in /p2p/<id>>" (libp2p's dnsaddr scheme).
func isDNSAddr(a multiaddr.Multiaddr) bool {
	if len(a) == 0 || a[0].Protocol().Code != multiaddr.P_DNSADDR {
		return false
	}
	_, err := a.ValueForProtocol(multiaddr.P_P2P)
	return err != nil
}

// dnsLoop resolves the /dnsaddr bootstrap names at start and every
// dnsRefresh, and learns the peers they list as members. Peers that
// disappear from DNS stay members until forgotten (ForgetAfter, Forget).
func (t *Transport) dnsLoop() {
	defer t.wg.Done()
	res := t.cfg.resolver
	if res == nil {
		res = madns.DefaultResolver
	}
	tick := time.NewTicker(dnsRefresh)
	defer tick.Stop()
	for {
		for _, name := range t.cfg.dnsaddrs {
			t.resolveBootstrap(res, name)
		}
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (t *Transport) resolveBootstrap(res *madns.Resolver, name multiaddr.Multiaddr) {
	ctx, cancel := context.WithTimeout(t.ctx, dnsTimeout)
	defer cancel()
	addrs, err := res.Resolve(ctx, name)
	if err != nil {
		if t.ctx.Err() == nil {
			t.refuseLog.Warn("dns/"+name.String(), "transport: could not resolve a bootstrap name", "name", name, "err", err)
		}
		return
	}
	var full []multiaddr.Multiaddr
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(multiaddr.P_P2P); err == nil {
			full = append(full, a)
		}
	}
	infos, err := peer.AddrInfosFromP2pAddrs(full...)
	if err != nil {
		t.refuseLog.Warn("dns/"+name.String(), "transport: bad address under a bootstrap name", "name", name, "err", err)
		return
	}
	learned := 0
	for _, ai := range infos {
		if t.cfg.PSK != nil {
			ai.Addrs = tcpOnly(ai.Addrs)
		}
		if _, changed := t.learn(ai.ID, ai.Addrs, "dnsaddr "+name.String()); changed {
			learned++
		}
	}
	t.log.Debug("transport: resolved a bootstrap name", "name", name, "peers", len(infos), "new_or_changed", learned)
	if learned > 0 {
		t.schedulePush()
	}
}

// tcpOnly drops the QUIC addresses, which a PSK network cannot use.
func tcpOnly(addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var out []multiaddr.Multiaddr
	for _, a := range addrs {
		if addrKind(a) != "quic" {
			out = append(out, a)
		}
	}
	return out
}
