package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/persist"
)

// errNotConverged and errLost are the failures that make a run fail: data
// that did not arrive or did not survive.
var (
	errNotConverged = errors.New("bench: peers did not converge")
	errLost         = errors.New("bench: data lost")
)

// mesh is a complete mesh of embedded nodes on real libp2p hosts over
// loopback, each bootstrapping to the nodes before it, as
// node/libp2p_test.go's startP2P starts them.
type mesh struct {
	name  string
	dir   string
	nodes []*p2pnode.Node
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// nodeConfig is the default configuration, on loopback, quiet, on disk
// under dir ("" keeps it in memory).
func nodeConfig(dir, meshName string, d persist.Durability) p2pnode.Config {
	cfg := p2pnode.DefaultConfig()
	cfg.DataDir = dir
	cfg.Durability = d
	cfg.Logger = quietLogger()
	cfg.Transport.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Transport.Mesh = meshName
	return cfg
}

func startMesh(ctx context.Context, name, dir string, size int, d persist.Durability) (*mesh, error) {
	return startMeshWith(ctx, name, dir, size, d, meshSetup{})
}

// startMeshOn starts one node per address in ips, each listening on its
// own loopback address (TCP only), so that a kernel cut (internal/netcut)
// can separate them.
func startMeshOn(ctx context.Context, name, dir string, ips []string, d persist.Durability) (*mesh, error) {
	return startMeshWith(ctx, name, dir, len(ips), d, meshSetup{tweak: func(i int, cfg *p2pnode.Config) {
		cfg.Transport.ListenAddrs = []string{"/ip4/" + ips[i] + "/tcp/0"}
	}})
}

// meshSetup adapts startMeshWith to a phase: tweak changes node i's
// configuration; formed, when set, says when the mesh is ready (default:
// every peer connected to every other, all in one another's gossip mesh),
// within the time given (default 30 s).
type meshSetup struct {
	tweak  func(i int, cfg *p2pnode.Config)
	formed func(m *mesh) bool
	within time.Duration
	what   string // what did not form, for the error
}

// startMeshWith starts size nodes, each bootstrapped to those before it,
// and waits for the mesh to form.
func startMeshWith(ctx context.Context, name, dir string, size int, d persist.Durability, s meshSetup) (*mesh, error) {
	m := &mesh{name: name, dir: dir}
	for i := range size {
		sub := ""
		if dir != "" {
			sub = filepath.Join(dir, fmt.Sprintf("node%d", i))
		}
		cfg := nodeConfig(sub, "bench-"+name, d)
		if s.tweak != nil {
			s.tweak(i, &cfg)
		}
		for _, n := range m.nodes {
			for _, a := range n.Transport().Addrs() {
				cfg.Transport.Bootstrap = append(cfg.Transport.Bootstrap, a.String())
			}
		}
		n, err := p2pnode.Open(ctx, cfg)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("mesh %s: node %d: %w", name, i, err)
		}
		m.nodes = append(m.nodes, n)
	}
	formed, within, what := s.formed, s.within, s.what
	if formed == nil {
		formed = func(m *mesh) bool {
			for _, n := range m.nodes {
				if len(n.Peers()) != size-1 || len(n.Transport().MeshPeers()) != size-1 {
					return false
				}
			}
			return true
		}
		what = "peers and gossip mesh"
	}
	if within == 0 {
		within = 30 * time.Second
	}
	if err := waitFor(ctx, within, func() bool { return formed(m) }); err != nil {
		m.close()
		return nil, fmt.Errorf("mesh %s: %s did not form: %w", name, what, err)
	}
	return m, nil
}

func (m *mesh) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range m.nodes {
		_ = n.Close(ctx)
	}
	if m.dir != "" {
		_ = os.RemoveAll(m.dir)
	}
}

func (m *mesh) converged() bool {
	root := m.nodes[0].Store().Digests().Root
	for _, n := range m.nodes[1:] {
		if n.Store().Digests().Root != root {
			return false
		}
	}
	return true
}

// waitConverged waits until every node has the same root digest and
// returns how long that took.
func (m *mesh) waitConverged(ctx context.Context, within time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := waitFor(ctx, within, m.converged); err != nil {
		return 0, fmt.Errorf("%w: mesh %s after %v: %w", errNotConverged, m.name, within, err)
	}
	return time.Since(start), nil
}

// cut blocks (or unblocks) every link between the two groups, both ways,
// as node/libp2p_test.go's cut does.
func (m *mesh) cut(left, right []int, block bool) {
	for _, a := range left {
		for _, b := range right {
			ta, tb := m.nodes[a].Transport(), m.nodes[b].Transport()
			if block {
				ta.Block(tb.ID())
				tb.Block(ta.ID())
			} else {
				ta.Unblock(tb.ID())
				tb.Unblock(ta.ID())
			}
		}
	}
}

// createSessions creates count standard sessions on n with conc writers
// and returns their tokens in order of seq (first seq = base); opts are
// added to each Create.
func createSessions(ctx context.Context, n *node.Node, base, count, conc int, opts ...node.CreateOption) ([]string, error) {
	tokens := make([]string, count)
	errs := make(chan error, conc)
	for w := range conc {
		go func() {
			for i := w; i < count; i += conc {
				if err := ctx.Err(); err != nil {
					// Create may not look at ctx (durability none): an
					// interrupted run stops its writers here.
					errs <- err
					return
				}
				tk, err := n.Create(ctx, append([]node.CreateOption{node.WithFields(sessionData(base + i))}, opts...)...)
				if err != nil {
					errs <- err
					return
				}
				tokens[i] = tk
			}
			errs <- nil
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return tokens, first
}

// checkSession reports errLost unless n holds the standard session seq
// under token, every field intact.
func checkSession(ctx context.Context, n *node.Node, token string, seq int) error {
	s, err := n.Get(ctx, token)
	if err != nil {
		return fmt.Errorf("%w: session %d on %s: %w", errLost, seq, n.ID(), err)
	}
	want := sessionData(seq)
	got := s.Fields()
	if len(got) != len(want) {
		return fmt.Errorf("%w: session %d on %s has %d fields, want %d", errLost, seq, n.ID(), len(got), len(want))
	}
	for k, v := range want {
		if string(got[k]) != string(v) {
			return fmt.Errorf("%w: session %d on %s: field %s differs", errLost, seq, n.ID(), k)
		}
	}
	return nil
}

// waitFor polls cond every 2 ms until it holds or within has passed.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) error {
	return waitEvery(ctx, within, 2*time.Millisecond, cond)
}

// waitEvery polls cond every poll until it holds or within has passed.
func waitEvery(ctx context.Context, within, poll time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(poll)
	}
	return nil
}
