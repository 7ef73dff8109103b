package simulations

import (
	"strings"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/transport"
)

// The model takes its parameters from package transport: a changed default
// there changes the simulated lifecycle.
func TestLifecycleDefaultsAreTransports(t *testing.T) {
	sc, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	r, err := sc.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Network.Transport
	if tr.FailureTimeout.D() != transport.DefaultFailureTimeout || tr.RedialInterval.D() != transport.DefaultRedialInterval || tr.DialTimeout.D() != transport.DefaultDialTimeout {
		t.Fatalf("resolved lifecycle %+v does not follow transport's defaults", tr)
	}
}

// A silent cut leaves connections up (and loses what goes over them) until
// failure detection, which comes within FailureTimeout and no sooner than
// 3/4 of it; after the heal every link is back within a redial interval
// plus the handshake.
func TestSilentCutDetectionAndRedial(t *testing.T) {
	sc, err := Parse([]byte(minimal + "faults: [{at: 2s, for: 20s, partition: [[a], [b]]}]\nexpect: {reconnect_within: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verdict.Pass {
		t.Fatalf("%s", res.Summary())
	}
	cut, heal := 2*time.Second, 22*time.Second
	ft := transport.DefaultFailureTimeout
	lost, back := 0, 0
	for _, ev := range res.Trace {
		at := ev.T.D()
		switch {
		case ev.Kind == "peer_down" && at >= cut && at < heal:
			lost++
			if at < cut+ft*3/4 || at > cut+ft {
				t.Errorf("%s lost %s at %v: want within [%v, %v] of the cut", ev.Node, ev.Peer, at, ft*3/4, ft)
			}
		case ev.Kind == "peer_up" && at >= heal:
			back++
			if at > heal+transport.DefaultRedialInterval*6/5+time.Second {
				t.Errorf("%s back with %s at %v, %v after the heal", ev.Node, ev.Peer, at, at-heal)
			}
		}
	}
	if lost != 2 || back != 2 {
		t.Fatalf("%d cross-region connections lost, %d back; want 2 and 2", lost, back)
	}
	if res.Figures.Channels["gossip"].Lost == 0 {
		t.Fatal("nothing was lost over the silent connections")
	}
}

// With readiness that requires a peer, a node cut off from every other one
// stops serving; by default it keeps serving.
func TestReadinessDrainsIsolatedNodeOnlyWhenAsked(t *testing.T) {
	base := minimal + "faults: [{at: 2s, for: 6s, partition: [[b-1]]}]\n"
	unavailable := func(text string) int64 {
		sc, err := Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(sc, 1)
		if err != nil {
			t.Fatal(err)
		}
		return res.Figures.Unavailable
	}
	if n := unavailable(base); n != 0 {
		t.Fatalf("%d operations unavailable with peer-independent readiness", n)
	}
	drained := strings.Replace(base, "quiet: 5s", "quiet: 5s\nnetwork: {transport: {ready_min_peers: 1}}", 1)
	if n := unavailable(drained); n == 0 {
		t.Fatal("an isolated node kept serving with ready_min_peers 1")
	}
}
