package transport

import (
	"strings"
	"testing"
	"time"

	"github.com/multiformats/go-multiaddr"
)

func TestParseRegion(t *testing.T) {
	t.Parallel()
	for agent, want := range map[string]string{
		agentString("eu-west"):                 "eu-west",
		agentString(""):                        "",
		"sessionmesh":                          "",
		"sessionmesh region=ap-1":              "ap-1",
		"sessionmesh/v1.2.3 x=y region=us.e_2": "us.e_2",
		"go-libp2p/0.51 region=eu":             "",
		"sessionmeshx/1 region=eu":             "",
		"sessionmesh/1 region=":                "",
		"sessionmesh/1 region=-bad":            "",
		"":                                     "",
	} {
		if got := parseRegion(agent); got != want {
			t.Errorf("parseRegion(%q) = %q, want %q", agent, got, want)
		}
	}
	if a := agentString("eu-west"); !strings.HasPrefix(a, "sessionmesh/") {
		t.Errorf("agentString = %q, want a sessionmesh/<version> prefix", a)
	}
}

func TestRegionValidate(t *testing.T) {
	t.Parallel()
	for region, ok := range map[string]bool{"": true, "eu-west": true, "us.east_1": true, "eu west": false, "-eu": false, strings.Repeat("r", 65): false} {
		cfg := testConfig()
		cfg.Region = region
		if err := cfg.Validate(); (err == nil) != ok {
			t.Errorf("region %q: Validate() = %v, want ok=%v", region, err, ok)
		}
	}
}

// Two hosts learn each other's region and addresses through identify.
func TestPeerRegion(t *testing.T) {
	t.Parallel()
	ca := testConfig()
	ca.Region = "eu-west"
	a := startTransport(t, ca, &recorder{})
	cb := testConfig()
	cb.Region = "us-east"
	cb.Bootstrap = addrsOf(a)
	b := startTransport(t, cb, &recorder{})
	c := startTransport(t, testConfig(), &recorder{}) // no region
	if err := c.Connect(t.Context(), a.Addrs()[0]); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 10*time.Second, "regions through identify", func() bool {
		return a.PeerRegion(b.ID()) == "us-east" && b.PeerRegion(a.ID()) == "eu-west" &&
			c.PeerRegion(a.ID()) == "eu-west" && len(a.PeerAddrs(c.ID())) > 0
	})
	if got := a.PeerRegion(c.ID()); got != "" {
		t.Errorf("region of a host without one = %q, want empty", got)
	}
	if got := a.PeerRegion(a.ID()); got != "" {
		t.Errorf("own region through the peerstore = %q, want empty", got)
	}

	// b dialled a at its listen address, so b knows it.
	listen, _ := multiaddr.SplitLast(a.Addrs()[0]) // drop /p2p
	found := false
	for _, x := range b.PeerAddrs(a.ID()) {
		found = found || x.Equal(listen)
	}
	if !found {
		t.Errorf("b.PeerAddrs(a) = %v, want it to contain %v", b.PeerAddrs(a.ID()), listen)
	}

	a.Close()
	if got := a.PeerRegion(b.ID()); got != "" {
		t.Errorf("PeerRegion after Close = %q, want empty", got)
	}
	if got := a.PeerAddrs(b.ID()); got != nil {
		t.Errorf("PeerAddrs after Close = %v, want nil", got)
	}
}
