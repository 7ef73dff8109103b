package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessionmesh/sessionmesh/internal/netcut"
)

// Tests with a real network cut: built daemons, each on its own loopback
// address (127.0.20.x, so that they never meet the transport's cut tests
// on 127.0.10.x), and iptables dropping the packets between two addresses,
// as a partition does: connections stay open and silent.

// statusOf returns p's /v1/status.
func statusOf(p *proc) statusView {
	p.t.Helper()
	code, body := p.call("GET", "/v1/status", "", "")
	if code != 200 {
		p.t.Fatalf("%s: /v1/status: %d %s", p.name, code, body)
	}
	var v statusView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		p.t.Fatalf("%s: /v1/status %q: %v", p.name, body, err)
	}
	return v
}

// memberStates returns whether p sees each member connected, by id.
func memberStates(p *proc) map[string]bool {
	p.t.Helper()
	code, body := p.call("GET", "/v1/peers", "", "")
	if code != 200 {
		p.t.Fatalf("%s: /v1/peers: %d %s", p.name, code, body)
	}
	var v struct{ Peers []member }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		p.t.Fatalf("%s: /v1/peers %q: %v", p.name, body, err)
	}
	out := make(map[string]bool)
	for _, m := range v.Peers {
		out[m.ID] = m.Connected
	}
	return out
}

// sees reports whether p knows id and its connection state is connected.
func sees(p *proc, id string, connected bool) bool {
	c, ok := memberStates(p)[id]
	return ok && c == connected
}

func requireCuts(t *testing.T) *netcut.Test {
	t.Helper()
	if testing.Short() {
		t.Skip("kernel cut tests run in the full pass (go test without -short)")
	}
	return netcut.New(t)
}

// A 10 s cut between two daemons, writes on both sides (creates, updates
// of the same field, a destroy on one side against writes on the other),
// then heal: the peers reconnect and converge, timed from the moment the
// cut is lifted; every acknowledged write is on both, no destroyed
// session is back. During the cut each side reports the other unreachable
// within 5 s and stays ready.
func TestKernelCutHeal(t *testing.T) {
	cut := requireCuts(t)
	const ipA, ipB = "127.0.20.2", "127.0.20.3"
	a := startProcOn(t, "a", ipA, filepath.Join(t.TempDir(), "a"), "--region", "west")
	b := startProcOn(t, "b", ipB, filepath.Join(t.TempDir(), "b"), "--region", "east", "--bootstrap", a.p2pAddr)
	eventually(t, 20*time.Second, "a and b connected", func() bool {
		return sees(a, b.peerID, true) && sees(b, a.peerID, true)
	})
	eventually(t, 20*time.Second, "the gossip meshes", func() bool { return inMesh(a, b.peerID) && inMesh(b, a.peerID) })

	// Before the cut: 30 sessions everyone has.
	var shared []string
	for i := range 30 {
		shared = append(shared, create(t, a, fmt.Sprintf(`{"fields": {"n": "%d"}}`, i)))
	}
	eventually(t, 20*time.Second, "the shared sessions on b", func() bool {
		return hasFields(b, shared[29], map[string]string{"n": "29"})
	})

	cutAt := time.Now()
	cut.Cut(ipA, ipB)
	var wg sync.WaitGroup
	var lostAt [2]time.Duration
	for i, pair := range [][2]*proc{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, other := pair[0], pair[1]
			for time.Since(cutAt) < 8*time.Second {
				if sees(p, other.peerID, false) {
					lostAt[i] = time.Since(cutAt)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}

	// Writes on both sides while cut.
	want := make(map[string]map[string]string) // token -> fields, on every peer at the end
	var destroyed []string
	for i, tok := range shared {
		switch {
		case i < 10: // destroyed on a, updated on b: the destroy wins
			if code, body := a.call("DELETE", "/v1/session", tok, ""); code != 204 {
				t.Fatalf("a: destroy: %d %s", code, body)
			}
			if code, body := b.call("PATCH", "/v1/session", tok, `{"set": {"n": "b wrote after the destroy"}}`); code != 204 {
				t.Fatalf("b: update: %d %s", code, body)
			}
			destroyed = append(destroyed, tok)
		case i < 20: // different fields on each side: both kept
			if code, body := a.call("PATCH", "/v1/session", tok, `{"set": {"from_a": "1"}}`); code != 204 {
				t.Fatalf("a: update: %d %s", code, body)
			}
			if code, body := b.call("PATCH", "/v1/session", tok, `{"set": {"from_b": "1"}}`); code != 204 {
				t.Fatalf("b: update: %d %s", code, body)
			}
			want[tok] = map[string]string{"n": fmt.Sprint(i), "from_a": "1", "from_b": "1"}
		default: // untouched
			want[tok] = map[string]string{"n": fmt.Sprint(i)}
		}
	}
	for i := range 40 {
		p := a
		if i%2 == 1 {
			p = b
		}
		f := map[string]string{"made_on": p.name, "i": fmt.Sprint(i)}
		want[create(t, p, fmt.Sprintf(`{"fields": {"made_on": %q, "i": "%d"}}`, p.name, i))] = f
	}
	wg.Wait()
	for i, d := range lostAt {
		if d == 0 || d > 5500*time.Millisecond {
			t.Errorf("peer %d did not report the other unreachable within 5 s of the cut (%v)", i, d)
		}
	}
	t.Logf("cut -> unreachable: a saw b lost after %v, b saw a lost after %v", lostAt[0].Round(time.Millisecond), lostAt[1].Round(time.Millisecond))
	for _, p := range []*proc{a, b} {
		if code, body := p.call("GET", "/readyz", "", ""); code != 200 {
			t.Errorf("%s /readyz during the cut: %d %s (an isolated peer must stay in service)", p.name, code, body)
		}
		if st := statusOf(p); st.Members.Known != 1 || st.Members.Reachable != 0 || !st.Ready {
			t.Errorf("%s /v1/status during the cut: %+v", p.name, st.Members)
		}
	}
	_, metrics := a.call("GET", "/metrics", "", "")
	for _, m := range []string{"sessionmesh_transport_members 1", "sessionmesh_transport_members_reachable 0",
		fmt.Sprintf(`sessionmesh_transport_member_connected{peer=%q,region="east"} 0`, b.peerID),
		fmt.Sprintf(`sessionmesh_transport_member_last_contact_seconds{peer=%q,region="east"} `, b.peerID)} {
		if !strings.Contains(metrics, m) {
			t.Errorf("a's /metrics during the cut lacks %q", m)
		}
	}
	if ra, rb := statusOf(a).Store.DigestRoot, statusOf(b).Store.DigestRoot; ra == rb {
		t.Fatalf("digest roots equal during the cut (%s): the cut did not cut", ra)
	}
	time.Sleep(time.Until(cutAt.Add(10 * time.Second)))

	cut.Heal()
	healed := time.Now()
	var connected, identical time.Duration
	for connected == 0 || identical == 0 {
		if time.Since(healed) > 30*time.Second {
			t.Fatalf("not converged 30 s after the heal (connected after %v)", connected)
		}
		if connected == 0 && sees(a, b.peerID, true) && sees(b, a.peerID, true) {
			connected = time.Since(healed)
		}
		if identical == 0 && statusOf(a).Store.DigestRoot == statusOf(b).Store.DigestRoot {
			identical = time.Since(healed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("heal -> connected %v, heal -> identical digests %v (10 s kernel cut)", connected.Round(time.Millisecond), identical.Round(time.Millisecond))

	for _, p := range []*proc{a, b} {
		for tok, f := range want {
			if !hasFields(p, tok, f) {
				code, body := p.call("GET", "/v1/session", tok, "")
				t.Errorf("%s: acknowledged write missing: want %v, have %d %s", p.name, f, code, body)
			}
		}
		for _, tok := range destroyed {
			if code, body := p.call("GET", "/v1/session", tok, ""); code != 404 {
				t.Errorf("%s: a destroyed session is back: %d %s", p.name, code, body)
			}
		}
	}
	sa, sb := statusOf(a), statusOf(b)
	if sa.Store.Sessions != sb.Store.Sessions || sa.Store.Sessions != 70 {
		t.Errorf("sessions stored: a %d, b %d, want 70 each (tombstones included)", sa.Store.Sessions, sb.Store.Sessions)
	}
}

// The star: b and c bootstrap only to a. Once membership has settled they
// know each other; cut a from both, and b and c still replicate to each
// other. The isolated a stays ready.
func TestKernelCutStar(t *testing.T) {
	cut := requireCuts(t)
	const ipA, ipB, ipC = "127.0.20.4", "127.0.20.5", "127.0.20.6"
	a := startProcOn(t, "a", ipA, filepath.Join(t.TempDir(), "a"))
	b := startProcOn(t, "b", ipB, filepath.Join(t.TempDir(), "b"), "--bootstrap", a.p2pAddr)
	c := startProcOn(t, "c", ipC, filepath.Join(t.TempDir(), "c"), "--bootstrap", a.p2pAddr)
	eventually(t, 20*time.Second, "b and c learning of each other through a", func() bool {
		return sees(b, c.peerID, true) && sees(c, b.peerID, true)
	})
	eventually(t, 20*time.Second, "the gossip meshes", func() bool {
		return inMesh(b, c.peerID) && inMesh(c, b.peerID)
	})

	cut.Cut(ipA, ipB)
	cut.Cut(ipA, ipC)
	cutAt := time.Now()
	// Written on b right away, before anyone noticed the cut: gossip
	// between b and c does not go through a.
	tok := create(t, b, `{"fields": {"written": "on b, a cut off"}}`)
	start := time.Now()
	eventually(t, 5*time.Second, "b's write on c with a cut off", func() bool {
		return hasFields(c, tok, map[string]string{"written": "on b, a cut off"})
	})
	t.Logf("b -> c replication with a cut off: %v", time.Since(start).Round(time.Millisecond))
	eventually(t, 6*time.Second, "b and c reporting a unreachable", func() bool {
		return sees(b, a.peerID, false) && sees(c, a.peerID, false)
	})
	if d := time.Since(cutAt); d > 5500*time.Millisecond {
		t.Errorf("a reported unreachable %v after the cut, want within 5 s", d)
	}
	if !sees(b, c.peerID, true) || !sees(c, b.peerID, true) {
		t.Errorf("b and c lost each other in a cut that does not separate them")
	}
	// Once a is known lost too, the write still flows between b and c.
	tok2 := create(t, c, `{"fields": {"written": "on c, a known lost"}}`)
	eventually(t, 5*time.Second, "c's write on b", func() bool {
		return hasFields(b, tok2, map[string]string{"written": "on c, a known lost"})
	})
	eventually(t, 6*time.Second, "a reporting both unreachable", func() bool {
		return sees(a, b.peerID, false) && sees(a, c.peerID, false)
	})
	if code, body := a.call("GET", "/readyz", "", ""); code != 200 {
		t.Errorf("isolated a: /readyz %d %s", code, body)
	}
	cut.Heal()
	eventually(t, 10*time.Second, "a catching up after the heal", func() bool {
		return hasFields(a, tok, map[string]string{"written": "on b, a cut off"}) &&
			hasFields(a, tok2, map[string]string{"written": "on c, a known lost"})
	})
}
