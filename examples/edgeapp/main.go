// Command edgeapp is a small edge service whose sessions live on an
// embedded sessionmesh node: run two instances on different ports, joined
// into one mesh, and a session started on one is served by the other. See
// README.md for a walkthrough.
//
//	go run ./examples/edgeapp -http 127.0.0.1:8081 -p2p /ip4/127.0.0.1/tcp/4001 -insecure-cookies
//	go run ./examples/edgeapp -http 127.0.0.1:8082 -p2p /ip4/127.0.0.1/tcp/4002 \
//		-bootstrap /ip4/127.0.0.1/tcp/4001/p2p/<peer id printed by the first> -insecure-cookies
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessionmesh/sessionmesh/p2pnode"
	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "edgeapp:", err)
		os.Exit(1)
	}
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("edgeapp", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:8081", "HTTP listen address")
	p2pAddr := fs.String("p2p", "/ip4/127.0.0.1/tcp/4001", "libp2p listen multiaddr of the node")
	var bootstrap listFlag
	fs.Var(&bootstrap, "bootstrap", "multiaddr of a peer to join, ending in /p2p/<peer id> (repeatable, or comma-separated)")
	dataDir := fs.String("data", "", "data directory of the node (empty: in memory, sessions and peer id lost on exit)")
	insecure := fs.Bool("insecure-cookies", false, "drop Secure and the __Host- prefix from the cookie, for plain http on a local machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg := p2pnode.DefaultConfig()
	cfg.DataDir = *dataDir
	cfg.Logger = log
	cfg.Transport.ListenAddrs = []string{*p2pAddr}
	cfg.Transport.Bootstrap = bootstrap
	n, err := p2pnode.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Close(closeCtx); err != nil {
			log.Error("closing the node", "err", err)
		}
	}()
	for _, a := range n.Transport().Addrs() {
		fmt.Printf("peer address: %s\n", a) // for -bootstrap of the next instance
	}

	scfg := sessionhttp.DefaultConfig()
	scfg.Logger = log
	scfg.Cookie.Insecure = *insecure
	m, err := sessionhttp.New(n.Node, scfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newApp(m, *httpAddr),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Printf("serving http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
