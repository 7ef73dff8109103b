package p2pnode

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A node whose member refuses it (not on the member's allowlist) keeps
// writing and running anti-entropy rounds, which used to redial the member
// on every send: hundreds of refused connections a second. Now the
// transport paces the dials and Send never dials, so the member sees a
// handful.
func TestRefusedNodeDoesNotStorm(t *testing.T) {
	t.Parallel()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := peer.IDFromPrivateKey(k)
	mcfg := testConfig()
	mcfg.Transport.ListenAddrs = []string{"/ip4/127.0.10.40/tcp/0"}
	mcfg.Transport.AllowedPeers = []peer.ID{other}
	member, err := Open(context.Background(), mcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = member.Close(context.Background()) })

	rcfg := testConfig()
	rcfg.Transport.ListenAddrs = []string{"/ip4/127.0.10.41/tcp/0"}
	for _, a := range member.Transport().Addrs() {
		rcfg.Transport.Bootstrap = append(rcfg.Transport.Bootstrap, a.String())
	}
	refused, err := Open(context.Background(), rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = refused.Close(context.Background()) })

	ctx := context.Background()
	deadline := time.Now().Add(4 * time.Second)
	writes := 0
	for time.Now().Before(deadline) {
		if _, err := refused.Create(ctx); err != nil {
			t.Fatal(err)
		}
		writes++
		time.Sleep(5 * time.Millisecond)
	}
	st := member.Transport().Stats()
	var total uint64
	for _, n := range st.Refused {
		total += n
	}
	t.Logf("4 s, %d writes on the refused node: member refused %d attempts %v; refused node dialled %d times",
		writes, total, st.Refused, refused.Transport().Stats().DialAttempts)
	if total == 0 {
		t.Fatal("the member refused nothing: the test did not exercise a refusal")
	}
	if total > 15 {
		t.Errorf("member refused %d attempts in 4 s, want a handful", total)
	}
	if len(member.Peers()) != 0 {
		t.Errorf("member has peers %v", member.Peers())
	}
}
