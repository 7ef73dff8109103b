package daemon

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sessionmesh/sessionmesh/metrics"
	"github.com/sessionmesh/sessionmesh/node"
	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/persist"
	"github.com/sessionmesh/sessionmesh/redisfront"
	"github.com/sessionmesh/sessionmesh/transport"
)

// HTTP server bounds.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// NewLogger returns the daemon's logger: text or JSON on w at level.
func NewLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Run starts the peer that cfg describes, prints where it listens to out,
// and serves until ctx ends or the HTTP server fails. It then shuts down:
// the HTTP server stops accepting and finishes the requests in flight, and
// the node flushes its pending deltas and closes the store, each step
// bounded by cfg.ShutdownTimeout and logged.
func Run(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	started := time.Now()
	nc := node.DefaultConfig()
	// The node keeps its store in DataDir/node.StoreDir, beside the
	// identity key.
	nc.DataDir = cfg.DataDir
	nc.Durability = cfg.Durability
	nc.StoreOptions = func(o *persist.Options) {
		o.Compression = cfg.Compression
		o.CacheBytes = cfg.CacheBytes
		o.MemTableSize = cfg.MemTableBytes
	}
	nc.IdleTimeout = cfg.IdleTimeout
	nc.AbsoluteLifetime = cfg.Lifetime
	nc.GCInterval = cfg.GCInterval
	nc.Replicas = cfg.Replicas
	nc.ConsistencyWait = cfg.ConsistencyWait
	nc.ConsistencyFetchAfter = min(nc.ConsistencyFetchAfter, cfg.ConsistencyWait)
	nc.Logger = log
	var psk []byte
	var err error
	if cfg.PSKFile != "" {
		if psk, err = ReadPSK(cfg.PSKFile, log); err != nil {
			return err
		}
	}
	tc, err := cfg.transportConfig(psk)
	if err != nil {
		return err
	}
	nc.Region = cfg.Region
	if psk != nil {
		// Owner ids are kept as keyed hashes when the mesh has a secret
		// of its own: a copy of the data then says nothing about which
		// users it holds sessions of.
		nc.OwnerKey = ownerKeyFromPSK(psk)
	}
	if cfg.EncryptionKeyFile != "" {
		if nc.EncryptionKey, err = ReadEncryptionKey(cfg.EncryptionKeyFile, log); err != nil {
			return err
		}
	}
	var bearer string
	if cfg.APITokenFile != "" {
		if bearer, err = ReadAPIToken(cfg.APITokenFile, log); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	var tr atomic.Pointer[transport.Transport]
	var store atomic.Value // node.Store, once open
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		newTransportCollector(tr.Load),
		newStoreCollector(func() statusStore {
			st, _ := store.Load().(statusStore)
			return st
		}),
	)
	nodeMetrics := metrics.New()
	reg.MustRegister(nodeMetrics)
	nc.Metrics = nodeMetrics

	// Bind HTTP first: a port in use fails before the store opens.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("daemon: http: %w", err)
	}
	var redisLn net.Listener
	if cfg.RedisAddr != "" {
		if redisLn, err = net.Listen("tcp", cfg.RedisAddr); err != nil {
			ln.Close()
			return fmt.Errorf("daemon: redis: %w", err)
		}
	}
	closeListeners := func() {
		ln.Close()
		if redisLn != nil {
			redisLn.Close()
		}
	}
	log.Info("opening node", "data_dir", cfg.DataDir, "durability", cfg.Durability.String(),
		"encrypted", nc.EncryptionKey != nil, "private", psk != nil, "gc_interval", nc.GCInterval)
	pn, err := p2pnode.Open(ctx, p2pnode.Config{Config: nc, Transport: tc})
	if err != nil {
		closeListeners()
		if ctx.Err() != nil {
			log.Info("shutdown: stopped while starting", "cause", context.Cause(ctx))
			return nil
		}
		return fmt.Errorf("daemon: %w", err)
	}
	n := pn.Node
	tr.Store(pn.Transport())
	store.Store(n.Store())

	var closing atomic.Bool
	// Ready means this peer can serve: the store is open (until the node
	// closes, which happens after closing is set) and the API answers.
	// Having no peer is not a reason to drain it: a region cut off from
	// the others must keep serving, and converges once the cut heals.
	ready := func() error {
		switch {
		case closing.Load():
			return errors.New("shutting down")
		case cfg.ReadyMinPeers > 0:
			if c := len(n.Peers()); c < cfg.ReadyMinPeers {
				return fmt.Errorf("%d peers connected, --ready-min-peers wants %d", c, cfg.ReadyMinPeers)
			}
		}
		return nil
	}
	srv := &http.Server{
		Handler: NewHandler(APIOptions{
			Node:         n,
			Transport:    pn.Transport(),
			BearerToken:  bearer,
			MaxBodyBytes: cfg.MaxBodyBytes,
			MaxLifetime:  nc.Limits.MaxLifetime,
			Region:       cfg.Region,
			Gatherer:     reg,
			Ready:        ready,
			Started:      started,
			DataDir:      cfg.DataDir,
			Durability:   cfg.Durability.String(),
			Encrypted:    nc.EncryptionKey != nil,
			Logger:       log.With("component", "http"),
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("component", "http").Handler(), slog.LevelDebug),
	}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(ln) }()
	var front *redisfront.Server
	if redisLn != nil {
		front, err = redisfront.New(n, redisfront.Config{
			Password:           bearer,
			MaxClients:         cfg.RedisMaxClients,
			MaxRequestBytes:    cfg.RedisMaxRequestBytes,
			IdleTimeout:        redisIdle(cfg.RedisIdleTimeout),
			SessionIdleTimeout: cfg.IdleTimeout,
			Lifetime:           cfg.Lifetime,
			Registerer:         reg,
			Logger:             log,
		})
		if err == nil && bearer == "" && !redisfront.IsLoopback(redisLn.Addr()) {
			err = redisfront.ErrNoPassword
		}
		if err != nil {
			redisLn.Close()
			srv.Close()
			_ = n.Close(context.Background())
			return fmt.Errorf("daemon: redis: %w", err)
		}
		go func() {
			if err := front.Serve(redisLn); err != nil {
				served <- err
			}
		}()
	}
	printBanner(out, pn, cfg, ln.Addr().String(), redisLn)
	log.Info("serving", "peer", string(n.ID()), "addrs", pn.Transport().Addrs(), "http", ln.Addr().String(),
		"redis", cfg.RedisAddr, "mesh", cfg.Mesh, "region", cfg.Region, "bootstrap", len(cfg.Bootstrap), "auth", bearer != "")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutdown: started", "cause", context.Cause(ctx))
	case err := <-served:
		runErr = fmt.Errorf("daemon: %w", err)
		log.Error("shutdown: a server failed", "err", err)
	}
	closing.Store(true)

	if front != nil {
		log.Info("shutdown: stopping the Redis front, finishing commands in flight", "timeout", cfg.ShutdownTimeout)
		rctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		if err := front.Shutdown(rctx); err != nil {
			log.Warn("shutdown: redis front", "err", err)
		}
		cancel()
	}

	log.Info("shutdown: stopping the HTTP server, finishing requests in flight", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown: requests still in flight, closing their connections", "err", err)
		srv.Close()
	}
	cancel()

	log.Info("shutdown: closing the node (flushing pending deltas, closing the store)", "timeout", cfg.ShutdownTimeout)
	cctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := n.Close(cctx); err != nil {
		log.Error("shutdown: closing the node", "err", err)
		return errors.Join(runErr, err)
	}
	log.Info("shutdown: done")
	return runErr
}

// printBanner tells the operator where the peer listens.
func printBanner(w io.Writer, n *p2pnode.Node, cfg Config, httpAddr string, redisLn net.Listener) {
	id := n.ID()
	fmt.Fprintf(w, "sessionmesh %s serving mesh %q", Version(), cfg.Mesh)
	if cfg.Region != "" {
		fmt.Fprintf(w, ", region %q", cfg.Region)
	}
	fmt.Fprintf(w, ", data in %s\n", cfg.DataDir)
	fmt.Fprintf(w, "peer id:      %s\n", id)
	addrs := n.Transport().Addrs()
	for _, a := range addrs {
		fmt.Fprintf(w, "peer address: %s\n", a)
	}
	// The redis line comes before the http line, which tools wait for
	// as the banner's last.
	if redisLn != nil {
		fmt.Fprintf(w, "redis:        redis://%s\n", redisLn.Addr())
	}
	fmt.Fprintf(w, "http api:     http://%s\n", httpAddr)
	if len(addrs) > 0 {
		fmt.Fprintf(w, "add a peer:   %s serve --bootstrap %s\n", selfCommand(os.Args[0]), addrs[0])
		fmt.Fprintf(w, "              (on this machine, also give it its own --data-dir, --listen and --http)\n")
	}
}

// selfCommand is how to run this program again, for the banner: under
// `go run` (a binary in Go's build cache) no sessionmesh is on the PATH.
func selfCommand(arg0 string) string {
	if strings.Contains(filepath.ToSlash(arg0), "/go-build") {
		return "go run ./cmd/sessionmesh"
	}
	return "sessionmesh"
}

// redisIdle maps the daemon's "0 means never" to the front's negative.
func redisIdle(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// ownerKeyFromPSK derives the key of owner hashes (node.Config.OwnerKey)
// from the mesh's pre-shared key, which every peer has.
func ownerKeyFromPSK(psk []byte) []byte {
	m := hmac.New(sha256.New, psk)
	m.Write([]byte("sessionmesh owner hash key v1"))
	return m.Sum(nil)
}
