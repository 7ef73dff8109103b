package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessionmesh/sessionmesh/internal/daemon"
)

// serve runs a peer until SIGINT, SIGTERM or SIGHUP, then shuts it down
// gracefully; a second signal during the shutdown exits at once with code 1.
// SIGHUP is among them because its default action ends the process on the
// spot (a closed terminal, a log rotator's HUP): the peer has no
// configuration to reload, and a graceful stop flushes pending deltas.
func serve(args []string, stdout, stderr io.Writer) int {
	cfg, err := daemon.Load(args, os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		daemon.PrintServeUsage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sessionmesh serve: %v\nRun 'sessionmesh serve -h' for usage.\n", err)
		return 2
	}
	log := daemon.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info("signal received: shutting down gracefully (send it again to exit at once)", "signal", s.String())
		cancel(fmt.Errorf("signal %s", s))
		s = <-sigs
		log.Error("second signal received: exiting at once", "signal", s.String())
		os.Exit(1)
	}()

	if err := daemon.Run(ctx, cfg, log, stdout); err != nil {
		log.Error("sessionmesh serve failed", "err", err)
		return 1
	}
	return 0
}
