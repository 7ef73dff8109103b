package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/multiformats/go-multiaddr"
	madns "github.com/multiformats/go-multiaddr-dns"
)

func memberIDs(tr *Transport) []peer.ID {
	var ids []peer.ID
	for _, m := range tr.Members() {
		ids = append(ids, m.ID)
	}
	return ids
}

func savedIDs(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, MembersFile))
	if err != nil {
		return nil
	}
	var list savedMembers
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("%s: %v", MembersFile, err)
	}
	var ids []string
	for _, m := range list.Members {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// Every member learns every other from one bootstrap address, keeps them
// in its data dir, and after a restart without any bootstrap address
// redials them all from that list.
func TestMembersLearnedPersistedAndRedialled(t *testing.T) {
	t.Parallel()
	dirA, _ := identity(t)
	dirB, _ := identity(t)
	dirC, idC := identity(t)
	ra, rb := &recorder{}, &recorder{}
	cfg := testConfig()
	cfg.DataDir, cfg.Region = dirA, "eu-west"
	a := startTransport(t, cfg, ra)
	cfg = testConfig()
	cfg.DataDir, cfg.Bootstrap = dirB, addrsOf(a)
	b := startTransport(t, cfg, rb)
	cfgC := testConfig()
	cfgC.DataDir, cfgC.Bootstrap = dirC, addrsOf(a)
	c, err := New(context.Background(), cfgC, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	waitMesh(t, map[*Transport][]*Transport{a: {b, c}, b: {a, c}, c: {a, b}})
	for _, tr := range []*Transport{a, b, c} {
		ms := tr.Members()
		if len(ms) != 2 {
			t.Fatalf("%s knows %d members, want 2", tr.ID(), len(ms))
		}
		for _, m := range ms {
			if !m.Connected || len(m.Addrs) == 0 || m.Since.IsZero() || m.LastSeen.IsZero() {
				t.Errorf("%s's view of %s: %+v", tr.ID(), m.ID, m)
			}
			if m.ID == a.ID() && m.Region != "eu-west" {
				t.Errorf("a's region seen as %q", m.Region)
			}
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{a.ID().String(), b.ID().String()}
	slices.Sort(want)
	if got := savedIDs(t, dirC); !slices.Equal(got, want) {
		t.Fatalf("c saved members %v, want %v", got, want)
	}
	waitFor(t, 10*time.Second, "a and b losing c", func() bool { return !ra.isUp(idC) && !rb.isUp(idC) })
	if m, _ := memberOf(a, idC); m.Connected {
		t.Errorf("a still sees c connected")
	}

	// Restart c with no bootstrap address at all.
	cfgC.Bootstrap = nil
	rc := &recorder{}
	c = startTransport(t, cfgC, rc)
	waitFor(t, 10*time.Second, "c redialling a and b from its member list", func() bool {
		return rc.isUp(a.ID()) && rc.isUp(b.ID())
	})
	if m, ok := memberOf(c, a.ID()); !ok || m.Region != "eu-west" {
		t.Errorf("c's view of a after restart: %+v", m)
	}
	waitFor(t, 5*time.Second, "a and b seeing c back", func() bool {
		return connectedTo(a, idC) && connectedTo(b, idC)
	})
}

// Forget drops a member for good: no more dials, out of Members and of the
// saved list; a member unreachable for ForgetAfter is forgotten by itself.
func TestForget(t *testing.T) {
	t.Parallel()
	dirA, _ := identity(t)
	ra := &recorder{}
	cfg := testConfig()
	cfg.DataDir, cfg.ForgetAfter = dirA, time.Minute
	a := startTransport(t, cfg, ra)
	if err := a.Forget(a.ID()); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Forget(self): %v, want ErrUnknownPeer", err)
	}

	b, err := New(context.Background(), func() Config { c := testConfig(); c.Bootstrap = addrsOf(a); return c }(), &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), func() Config { c := testConfig(); c.Bootstrap = addrsOf(a); return c }(), &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	idB, idC := b.ID(), c.ID()
	waitFor(t, 10*time.Second, "b and c connected to a", func() bool { return ra.isUp(idB) && ra.isUp(idC) })
	b.Close()
	c.Close()
	waitFor(t, 10*time.Second, "a losing b and c", func() bool { return !ra.isUp(idB) && !ra.isUp(idC) })
	waitFor(t, 5*time.Second, "b and c saved", func() bool { return len(savedIDs(t, dirA)) == 2 })

	if err := a.Forget(idB); err != nil {
		t.Fatal(err)
	}
	if err := a.Forget(idB); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("second Forget: %v, want ErrUnknownPeer", err)
	}
	if ids := memberIDs(a); !slices.Equal(ids, []peer.ID{idC}) {
		t.Errorf("members after Forget: %v, want only c", ids)
	}
	waitFor(t, 5*time.Second, "b out of the saved list", func() bool {
		return slices.Equal(savedIDs(t, dirA), []string{idC.String()})
	})

	// a keeps dialling c (about once a second), not b.
	d0 := a.Stats().DialAttempts
	time.Sleep(2500 * time.Millisecond)
	if d := a.Stats().DialAttempts - d0; d < 1 || d > 5 {
		t.Errorf("%d dials of absent c in 2.5 s, want 1-5", d)
	}

	// c unreachable for longer than ForgetAfter (the clock is moved back
	// rather than waited for).
	a.mem.mu.Lock()
	m := a.mem.members[idC]
	past := time.Now().Add(-2 * time.Minute)
	m.learned, m.lastSeen, a.started = past, past, past
	a.mem.mu.Unlock()
	m.wakeUp()
	waitFor(t, 5*time.Second, "c forgotten", func() bool { return len(a.Members()) == 0 })
	if n := a.Stats().MembersForgotten; n != 2 {
		t.Errorf("MembersForgotten = %d, want 2", n)
	}
	waitFor(t, 5*time.Second, "empty saved list", func() bool { return len(savedIDs(t, dirA)) == 0 })
}

// A member cannot pass on a record it forged for another member, nor bring
// in a peer outside the allowlist; garbage is counted and dropped.
func TestForgedRecordIgnored(t *testing.T) {
	t.Parallel()
	dirA, idA := identity(t)
	dirB, idB := identity(t)
	dirM, idM := identity(t)
	members := []peer.ID{idA, idB, idM}
	ra := &recorder{}
	cfg := func(dir string, boot []string) Config {
		c := testConfig()
		c.DataDir, c.AllowedPeers, c.Bootstrap = dir, members, boot
		return c
	}
	a := startTransport(t, cfg(dirA, nil), ra)
	b := startTransport(t, cfg(dirB, addrsOf(a)), &recorder{})
	m := startTransport(t, cfg(dirM, addrsOf(a)), &recorder{})
	waitFor(t, 10*time.Second, "b and m connected to a", func() bool { return ra.isUp(b.ID()) && ra.isUp(m.ID()) })

	evil := multiaddr.StringCast("/ip4/127.0.10.99/tcp/1")
	mKey := m.h.Peerstore().PrivKey(m.ID())
	forged := sealRecord(t, &peer.PeerRecord{PeerID: b.ID(), Addrs: []multiaddr.Multiaddr{evil}, Seq: uint64(time.Now().UnixNano()) * 2}, mKey)
	oKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	oID, _ := peer.IDFromPrivateKey(oKey)
	stranger := sealRecord(t, &peer.PeerRecord{PeerID: oID, Addrs: []multiaddr.Multiaddr{evil}, Seq: 1}, oKey)
	pushRawRecords(t, m, a, forged, stranger, []byte("not an envelope"))
	waitFor(t, 5*time.Second, "records rejected", func() bool {
		r := a.Stats().RecordsRejected
		return r[RecordForged] >= 1 && r[RecordNotMember] >= 1 && r[RecordInvalid] >= 1
	})
	mb, ok := memberOf(a, b.ID())
	if !ok {
		t.Fatal("b is not a member of a")
	}
	for _, x := range append(mb.Addrs, a.PeerAddrs(b.ID())...) {
		if x.Equal(evil) {
			t.Errorf("a took the forged address for b: %v", mb.Addrs)
		}
	}
	if _, ok := memberOf(a, oID); ok {
		t.Error("a took an outsider as a member")
	}
}

// A peer the member refuses (not on the allowlist, or another PSK) costs
// the member a bounded number of connection attempts, even while the
// refused side keeps trying to send as the node's send loop does: the
// refused side backs off and the member paces attempts per address.
// Before this, such a peer made 300-400 attempts a second.
func TestRefusedPeerBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name               string
		memberIP, refused  string
		allowlist, wrongPK bool
	}{
		{"not allowed", "127.0.10.20", "127.0.10.21", true, false},
		{"wrong PSK", "127.0.10.22", "127.0.10.23", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dirA, idA := identity(t)
			_, other := identity(t)
			cfg := onAddr(testConfig(), tc.memberIP)
			cfg.DataDir = dirA
			if tc.allowlist {
				cfg.AllowedPeers = []peer.ID{idA, other}
			}
			if tc.wrongPK {
				cfg.PSK = bytes.Repeat([]byte{1}, PSKSize)
			}
			a := startTransport(t, cfg, &recorder{})

			dcfg := onAddr(testConfig(), tc.refused)
			dcfg.Bootstrap = addrsOf(a)
			if tc.wrongPK {
				dcfg.PSK = bytes.Repeat([]byte{2}, PSKSize)
			}
			storm := &stormHandler{}
			d := startTransport(t, dcfg, storm)
			storm.start(d, a.ID())
			defer storm.stop()

			const window = 5 * time.Second
			time.Sleep(window)
			st, sd := a.Stats(), d.Stats()
			var refused uint64
			for _, n := range st.Refused {
				refused += n
			}
			handshakes := st.Refused[RefuseNotMember] + st.Refused[RefuseHandshake]
			t.Logf("in %v: member refused %d attempts (%v); refused peer made %d dials, %d sends tried",
				window, refused, st.Refused, sd.DialAttempts, storm.sends.Load())
			if refused == 0 {
				t.Fatal("no refusal counted")
			}
			// Today: a handful of dials (1, 2, 4 s apart), at most about
			// one handshake a second. Before: hundreds a second.
			if handshakes > 10 || refused > 20 || sd.DialAttempts > 10 {
				t.Errorf("too many attempts: %d handshakes, %d refusals, %d dials", handshakes, refused, sd.DialAttempts)
			}
			if len(a.Members()) != 0 {
				t.Errorf("member lists the refused peer: %v", a.Members())
			}
		})
	}
}

// stormHandler sends to the peer in a loop whenever it is up, as a node
// whose send queue is full would.
type stormHandler struct {
	recorder
	sends atomic.Int64
	done  chan struct{}
}

func (s *stormHandler) start(tr *Transport, to peer.ID) {
	s.done = make(chan struct{})
	go func() {
		for {
			select {
			case <-s.done:
				return
			case <-time.After(time.Millisecond):
			}
			s.sends.Add(1)
			_ = tr.Send(context.Background(), to, []byte("sync request"))
		}
	}()
}

func (s *stormHandler) stop() { close(s.done) }

// Pings share the connection with bulk traffic; a link busy with large
// frames both ways for longer than FailureTimeout is not declared lost.
func TestBusyLinkNotDeclaredLost(t *testing.T) {
	t.Parallel()
	ra, rb := &recorder{}, &recorder{}
	a := startTransport(t, testConfig(), ra)
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	cfg.FailureTimeout = time.Second // tighter than the default, to make it harder
	b := startTransport(t, cfg, rb)
	waitFor(t, 10*time.Second, "connected", func() bool { return ra.isUp(b.ID()) && rb.isUp(a.ID()) })

	frame := bytes.Repeat([]byte{7}, 512<<10)
	stop := time.Now().Add(3 * time.Second)
	var sent atomic.Int64
	done := make(chan struct{})
	for _, pair := range [][2]*Transport{{a, b}, {b, a}} {
		go func() {
			defer func() { done <- struct{}{} }()
			for time.Now().Before(stop) {
				if err := pair[0].Send(context.Background(), pair[1].ID(), frame); err != nil {
					t.Errorf("send: %v", err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	<-done
	<-done
	t.Logf("%d MiB sent in 3 s", sent.Load()/2)
	if n := a.Stats().FailuresDetected + b.Stats().FailuresDetected; n != 0 {
		t.Errorf("%d failures detected on a busy, healthy link", n)
	}
	if _, downs := ra.ups(b.ID()); downs != 0 {
		t.Errorf("a lost b %d times", downs)
	}
	if _, downs := rb.ups(a.ID()); downs != 0 {
		t.Errorf("b lost a %d times", downs)
	}
}

// txtResolver answers TXT lookups from a map (and nothing else).
type txtResolver map[string][]string

func (r txtResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return nil, errors.New("no A records here")
}

func (r txtResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := r[name]; ok {
		return v, nil
	}
	return nil, errors.New("no such name")
}

// A /dnsaddr bootstrap name brings in every peer its TXT records list.
func TestDNSAddrBootstrap(t *testing.T) {
	t.Parallel()
	a := startTransport(t, testConfig(), &recorder{})
	b := startTransport(t, testConfig(), &recorder{})
	var txt []string
	for _, tr := range []*Transport{a, b} {
		txt = append(txt, "dnsaddr="+tr.Addrs()[0].String())
	}
	res, err := madns.NewResolver(madns.WithDefaultResolver(txtResolver{"_dnsaddr.mesh.example": txt}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Bootstrap = []string{"/dnsaddr/mesh.example"}
	cfg.resolver = res
	rc := &recorder{}
	startTransport(t, cfg, rc)
	waitFor(t, 10*time.Second, "c connected to a and b", func() bool { return rc.isUp(a.ID()) && rc.isUp(b.ID()) })

	for _, bad := range []string{"/dnsaddr/mesh.example/tcp/1", "/dns4/mesh.example/tcp/1"} {
		cfg := testConfig()
		cfg.Bootstrap = []string{bad}
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Bootstrap %s: %v, want ErrInvalidConfig", bad, err)
		}
	}
}

// A forgotten member stays forgotten across a restart, although the other
// members still pass its (old) record on.
func TestForgottenStaysForgotten(t *testing.T) {
	t.Parallel()
	dirA, _ := identity(t)
	cfgA := testConfig()
	cfgA.DataDir = dirA
	a, err := New(context.Background(), cfgA, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Bootstrap = addrsOf(a)
	cfgA.ListenAddrs = []string{a.h.Addrs()[0].String()} // same address after the restart
	b, err := New(context.Background(), cfg, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	rc := &recorder{}
	c := startTransport(t, cfg, rc)
	idB := b.ID()
	// c passes on only the records it holds: connected before identify
	// brought b's record, it would have none of b to pass on.
	waitFor(t, 10*time.Second, "c holding b's record", func() bool {
		return connectedTo(c, idB) && connectedTo(a, idB) && c.cab().GetPeerRecord(idB) != nil
	})
	b.Close()
	waitFor(t, 10*time.Second, "a losing b", func() bool { return !connectedTo(a, idB) })
	if err := a.Forget(idB); err != nil {
		t.Fatal(err)
	}
	a.Close()

	a = startTransport(t, cfgA, &recorder{})
	waitFor(t, 10*time.Second, "c back with a", func() bool { return rc.isUp(a.ID()) && connectedTo(a, c.ID()) })
	waitFor(t, 5*time.Second, "c's record of b ignored", func() bool {
		return a.Stats().RecordsRejected[RecordForgotten] >= 1
	})
	if _, ok := memberOf(a, idB); ok {
		t.Error("b came back after a restart")
	}
}

// A bootstrap address pointing at a host of another mesh does not merge
// the two meshes' member lists: that host's address is not passed on.
func TestOtherMeshNotPassedOn(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Mesh = "mesh-x"
	a := startTransport(t, cfg, &recorder{})
	cfg = testConfig()
	cfg.Mesh = "mesh-y"
	cfg.Bootstrap = addrsOf(a) // the mistake
	b := startTransport(t, cfg, &recorder{})
	cfg.Bootstrap = addrsOf(b)
	rc := &recorder{}
	c := startTransport(t, cfg, rc)
	d := startTransport(t, cfg, &recorder{}) // a member of mesh-y, known to c through b
	waitFor(t, 10*time.Second, "b connected to a, c to b and d", func() bool {
		return connectedTo(b, a.ID()) && connectedTo(c, b.ID()) && connectedTo(c, d.ID())
	})
	time.Sleep(500 * time.Millisecond) // further pushes, if any
	if _, ok := memberOf(c, a.ID()); ok {
		t.Error("c learned a host of another mesh through b")
	}
	if up, _ := rc.ups(a.ID()); up != 0 {
		t.Error("c connected to a host of another mesh")
	}
}

// In an open mesh a member can pass on records of peers that do not exist;
// this host takes at most MaxUnconnectedMembers of the never-connected
// peers they name (each is dialled until ForgetAfter), ignores the rest
// as RecordTooMany, and still takes a real peer that connects. Unbounded,
// one member's 12,288 made-up records became 12,288 members and 40,000
// goroutines.
func TestRecordsOfUnconnectedPeersBounded(t *testing.T) {
	t.Parallel()
	const limit, made = 20, 200
	dirA, _ := identity(t)
	dirM, _ := identity(t)
	ra := &recorder{}
	ac := testConfig()
	ac.DataDir, ac.MaxUnconnectedMembers = dirA, limit
	a := startTransport(t, ac, ra)
	mc := testConfig()
	mc.DataDir, mc.Bootstrap = dirM, addrsOf(a)
	m := startTransport(t, mc, &recorder{})
	waitFor(t, 10*time.Second, "m connected to a", func() bool { return ra.isUp(m.ID()) })

	dead := multiaddr.StringCast("/ip4/127.0.10.99/tcp/1")
	var raws [][]byte
	for range made {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		raws = append(raws, sealRecord(t, &peer.PeerRecord{PeerID: id, Addrs: []multiaddr.Multiaddr{dead}, Seq: 1}, k))
	}
	pushRawRecords(t, m, a, raws...)
	waitFor(t, 10*time.Second, "records counted", func() bool {
		st := a.Stats()
		return st.RecordsRejected[RecordTooMany] >= made-limit
	})
	if n := len(a.Members()); n != limit+1 {
		t.Fatalf("a has %d members, want m and %d others", n, limit)
	}

	// A real peer that connects is taken with the bound reached.
	dirC, _ := identity(t)
	cc := testConfig()
	cc.DataDir, cc.Bootstrap = dirC, addrsOf(a)
	c := startTransport(t, cc, &recorder{})
	waitFor(t, 10*time.Second, "c connected to a", func() bool { return ra.isUp(c.ID()) })
	if _, ok := memberOf(a, c.ID()); !ok {
		t.Fatal("a did not take a peer that connected to it")
	}
}

// sealRecord signs rec with key and marshals the envelope, as a member's
// record exchange carries it.
func sealRecord(t *testing.T, rec *peer.PeerRecord, key crypto.PrivKey) []byte {
	t.Helper()
	env, err := record.Seal(rec, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// pushRawRecords sends raws to "to" on from's member-exchange stream, each
// framed by its uvarint length, as pushRecords frames them.
func pushRawRecords(t *testing.T, from, to *Transport, raws ...[]byte) {
	t.Helper()
	var buf bytes.Buffer
	for _, r := range raws {
		buf.Write(binary.AppendUvarint(nil, uint64(len(r))))
		buf.Write(r)
	}
	s, err := from.h.NewStream(context.Background(), to.ID(), MembersProtocol(DefaultMesh))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	s.Close()
}
