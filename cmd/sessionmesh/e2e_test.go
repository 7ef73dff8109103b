package main

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type session struct {
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

// hasFields reports whether p has the session of token with exactly the
// wanted fields.
func hasFields(p *proc, token string, want map[string]string) bool {
	status, body := p.call("GET", "/v1/session", token, "")
	if status != 200 {
		return false
	}
	var s session
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		p.t.Fatalf("%s: session body %q: %v", p.name, body, err)
	}
	for k, v := range want {
		if s.Fields[k] != v {
			return false
		}
	}
	return len(s.Fields) == len(want)
}

func create(t *testing.T, p *proc, body string) string {
	t.Helper()
	status, resp := p.call("POST", "/v1/sessions", "", body)
	if status != 201 {
		t.Fatalf("%s: create: %d %s", p.name, status, resp)
	}
	var r struct{ Token, ID string }
	if err := json.Unmarshal([]byte(resp), &r); err != nil || r.Token == "" {
		t.Fatalf("%s: create: %q: %v", p.name, resp, err)
	}
	return r.Token
}

type peersView struct {
	Self struct {
		ID     string `json:"id"`
		Region string `json:"region"`
	} `json:"self"`
	Peers []struct {
		ID         string   `json:"id"`
		Addrs      []string `json:"addrs"`
		Region     string   `json:"region"`
		GossipMesh bool     `json:"gossip_mesh"`
	} `json:"peers"`
}

// inMesh reports whether p has each of ids in its gossip mesh.
func inMesh(p *proc, ids ...string) bool {
	v, _ := regions(p)
	n := 0
	for _, pr := range v.Peers {
		for _, id := range ids {
			if pr.ID == id && pr.GossipMesh {
				n++
			}
		}
	}
	return n == len(ids)
}

// regions returns the regions p shows for its peers, by peer id.
func regions(p *proc) (peersView, map[string]string) {
	status, body := p.call("GET", "/v1/peers", "", "")
	if status != 200 {
		p.t.Fatalf("%s: /v1/peers: %d %s", p.name, status, body)
	}
	var v peersView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		p.t.Fatalf("%s: /v1/peers %q: %v", p.name, body, err)
	}
	out := make(map[string]string)
	for _, pr := range v.Peers {
		if len(pr.Addrs) > 0 {
			out[pr.ID] = pr.Region
		}
	}
	return v, out
}

// Three daemons on loopback: a session written through one is read on the
// others; a daemon stopped with SIGTERM and restarted from its data
// directory catches up on what it missed.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	dirs := []string{filepath.Join(t.TempDir(), "p1"), filepath.Join(t.TempDir(), "p2"), filepath.Join(t.TempDir(), "p3")}
	p1 := startProc(t, "p1", dirs[0], "--region", "eu-west")
	p2 := startProc(t, "p2", dirs[1], "--region", "us-east", "--bootstrap", p1.p2pAddr)
	p3args := []string{"--region", "ap-south", "--bootstrap", p1.p2pAddr}
	p3 := startProc(t, "p3", dirs[2], p3args...)
	all := []*proc{p1, p2, p3}

	for _, p := range all {
		if status, body := p.call("GET", "/healthz", "", ""); status != 200 || !strings.Contains(body, `"ok"`) {
			t.Errorf("%s /healthz: %d %s", p.name, status, body)
		}
		eventually(t, 20*time.Second, p.name+" ready", func() bool {
			status, _ := p.call("GET", "/readyz", "", "")
			return status == 200
		})
	}

	// Gossip flows once the meshes have formed (a gossipsub heartbeat after
	// connecting); before that only anti-entropy, every 10 s, would carry
	// a write from p2 through p1 to p3.
	eventually(t, 20*time.Second, "the gossip meshes", func() bool {
		return inMesh(p1, p2.peerID, p3.peerID) && inMesh(p2, p1.peerID) && inMesh(p3, p1.peerID)
	})

	// Written on p2, read on p1 and p3.
	tok := create(t, p2, `{"fields": {"user": "alice", "cart": "1"}}`)
	want := map[string]string{"user": "alice", "cart": "1"}
	for _, p := range []*proc{p1, p3} {
		eventually(t, 20*time.Second, "the session on "+p.name, func() bool { return hasFields(p, tok, want) })
	}
	// Updated on p3, seen on p1 and p2.
	if status, body := p3.call("PATCH", "/v1/session", tok, `{"set": {"cart": "2"}, "remove": ["user"]}`); status != 204 {
		t.Fatalf("p3 update: %d %s", status, body)
	}
	want = map[string]string{"cart": "2"}
	for _, p := range []*proc{p1, p2} {
		eventually(t, 20*time.Second, "the update on "+p.name, func() bool { return hasFields(p, tok, want) })
	}

	// Every peer shows the others with their regions: p2 and p3 learned
	// of each other through p1 (membership), though they bootstrap to p1
	// only.
	wantRegions := map[*proc]map[string]string{
		p1: {p2.peerID: "us-east", p3.peerID: "ap-south"},
		p2: {p1.peerID: "eu-west", p3.peerID: "ap-south"},
		p3: {p1.peerID: "eu-west", p2.peerID: "us-east"},
	}
	for p, want := range wantRegions {
		eventually(t, 20*time.Second, p.name+"'s peers and their regions", func() bool {
			_, got := regions(p)
			for id, r := range want {
				if got[id] != r {
					return false
				}
			}
			return true
		})
	}
	if v, _ := regions(p1); v.Self.ID != p1.peerID || v.Self.Region != "eu-west" {
		t.Errorf("p1 self: %+v", v.Self)
	}

	// Metrics: node counters on the writer and the readers, transport
	// statistics, Go runtime.
	_, metrics := p2.call("GET", "/metrics", "", "")
	for _, m := range []string{"sessionmesh_deltas_sent_total", "sessionmesh_batches_sent_total", "sessionmesh_transport_gossip_published_total",
		"sessionmesh_transport_peers 2", "sessionmesh_transport_members 2", "sessionmesh_transport_members_reachable 2", "go_goroutines", "sessionmesh_build_info{"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("p2 /metrics lacks %q", m)
		}
	}
	eventually(t, 10*time.Second, "p1 deltas_received", func() bool {
		_, m := p1.call("GET", "/metrics", "", "")
		return strings.Contains(m, "sessionmesh_deltas_received_total ") && strings.Contains(m, "sessionmesh_transport_peers 2")
	})

	// p3 stops cleanly; what happens meanwhile reaches it when it is back.
	p3.stop()
	log := p3.stderr.String()
	for _, step := range []string{"signal received", "shutdown: stopping the HTTP server", "shutdown: closing the node", "shutdown: done"} {
		if !strings.Contains(log, step) {
			t.Errorf("p3's log lacks %q", step)
		}
	}
	tok2 := create(t, p1, `{"fields": {"created": "while p3 was down"}}`)
	if status, body := p2.call("PATCH", "/v1/session", tok, `{"set": {"cart": "3"}}`); status != 204 {
		t.Fatalf("p2 update: %d %s", status, body)
	}
	eventually(t, 20*time.Second, "the new session on p2", func() bool {
		return hasFields(p2, tok2, map[string]string{"created": "while p3 was down"})
	})

	p3id := p3.peerID
	p3 = startProc(t, "p3 again", dirs[2], p3args...)
	if p3.peerID != p3id {
		t.Errorf("p3 came back as %s, was %s: the identity lives in the data directory", p3.peerID, p3id)
	}
	// What p3 had before stopping is on its disk.
	if !hasFields(p3, tok, map[string]string{"cart": "2"}) && !hasFields(p3, tok, map[string]string{"cart": "3"}) {
		t.Errorf("p3 lost the session it had before stopping")
	}
	eventually(t, 30*time.Second, "p3 catching up on the new session", func() bool {
		return hasFields(p3, tok2, map[string]string{"created": "while p3 was down"})
	})
	eventually(t, 30*time.Second, "p3 catching up on the update", func() bool {
		return hasFields(p3, tok, map[string]string{"cart": "3"})
	})
	for _, p := range []*proc{p1, p2, p3} {
		p.stop()
	}
}

// The first SIGTERM starts a graceful shutdown; a second one during it
// exits at once with code 1.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	p := startProc(t, "p", filepath.Join(t.TempDir(), "data"), "--shutdown-timeout", "1m")

	// Hold a request open: the handler is waiting for a body that does not
	// come, so the graceful shutdown waits for it.
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The server answers 100 Continue once the handler reads the body.
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "100 Continue") {
		t.Fatalf("waiting for 100 Continue: %q, %v", buf[:n], err)
	}
	if _, err := conn.Write([]byte(`{"fields": `)); err != nil {
		t.Fatal(err)
	}

	p.signal(syscall.SIGTERM)
	eventually(t, 10*time.Second, "the graceful shutdown to start", func() bool {
		return strings.Contains(p.stderr.String(), "shutdown: stopping the HTTP server")
	})
	select {
	case <-p.exited:
		t.Fatalf("exited while a request was in flight\n%s", p.stderr.String())
	default:
	}
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 1 {
		t.Errorf("exit code %d after a second signal, want 1", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to exit after the second signal", d)
	}
	if !strings.Contains(p.stderr.String(), "second signal received") {
		t.Errorf("no log line for the second signal:\n%s", p.stderr.String())
	}
}

// A peer cut off from its bootstrap peers stays ready: an isolated region
// keeps serving. --ready-min-peers brings back the old rule for those who
// want it.
func TestReadyWithoutPeers(t *testing.T) {
	t.Parallel()
	a := startProc(t, "a", filepath.Join(t.TempDir(), "a"))
	// a's id at an address where nothing listens.
	unreachable := "/ip4/127.0.0.1/tcp/1/p2p/" + a.peerID
	b := startProc(t, "b", filepath.Join(t.TempDir(), "b"), "--bootstrap", unreachable)
	if status, body := b.call("GET", "/readyz", "", ""); status != 200 {
		t.Errorf("/readyz without a peer: %d %s", status, body)
	}
	c := startProc(t, "c", filepath.Join(t.TempDir(), "c"), "--bootstrap", unreachable, "--ready-min-peers", "1")
	status, body := c.call("GET", "/readyz", "", "")
	if status != 503 || !strings.Contains(body, `"not_ready"`) || !strings.Contains(body, "ready-min-peers") {
		t.Errorf("/readyz with --ready-min-peers 1 and no peer: %d %s", status, body)
	}
	if st := statusOf(c); st.Ready || !strings.Contains(st.NotReady, "ready-min-peers") || st.Members.Known != 1 || st.Members.Reachable != 0 {
		t.Errorf("/v1/status of c: ready %v %q, members %+v", st.Ready, st.NotReady, st.Members)
	}
	if status, _ := c.call("GET", "/healthz", "", ""); status != 200 {
		t.Errorf("/healthz: %d", status)
	}
	if status, _ := a.call("GET", "/readyz", "", ""); status != 200 {
		t.Errorf("/readyz of a peer without bootstrap peers: %d", status)
	}
	a.stop()
	b.stop()
	c.stop()
}

// TestHangupShutsDownGracefully: SIGHUP (a closed terminal) stops the peer
// the way SIGTERM does, exit code 0 after the logged shutdown, and what it
// acknowledged is there after a restart; its default action would have
// killed the process without a word.
func TestHangupShutsDownGracefully(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	p := startProc(t, "p", dir)
	token := create(t, p, `{"fields": {"user": "ada"}}`)
	p.signal(syscall.SIGHUP)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGHUP, want 0\n%s", code, p.stderr.String())
	}
	for _, want := range []string{"signal received", "hangup", "shutdown: stopping the HTTP server"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("no %q in the log after SIGHUP:\n%s", want, p.stderr.String())
		}
	}
	p = startProc(t, "p again", dir)
	defer p.stop()
	if !hasFields(p, token, map[string]string{"user": "ada"}) {
		t.Errorf("the session acknowledged before SIGHUP is not there after a restart")
	}
}
