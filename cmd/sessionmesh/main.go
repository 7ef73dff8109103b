// Command sessionmesh runs a sessionmesh peer and manages its key files.
//
//	sessionmesh serve      run a peer (see sessionmesh serve -h)
//	sessionmesh keygen     write identity, pre-shared, encryption or API keys
//	sessionmesh version    print the version
//	sessionmesh sim        run, replay and sweep partition simulations
//	sessionmesh status     a running peer: members, store (admin commands
//	sessionmesh peers      talk to a daemon's HTTP API; restore works
//	sessionmesh sync       offline on a data directory)
//	sessionmesh backup
//	sessionmesh restore
//	sessionmesh help       print usage
//
// The daemon's logic lives in internal/daemon; this package parses the
// command line, handles signals and sets the exit code: 0 on success, 1 on
// failure (and on a second shutdown signal), 2 on a usage error, 3 when an
// admin command finds no daemon at its address, 4 when the daemon refuses
// its API token.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/sessionmesh/sessionmesh/simulations"
)

const usage = `sessionmesh: a peer of a replicated session store.

Usage:
  sessionmesh <command> [flags]

Commands:
  serve     run a peer: session store, mesh replication, HTTP API
  keygen    write a key file: identity, psk, encryption-key or api-token
  version   print the version of sessionmesh and of Go
  sim       run, replay, sweep, shrink or list partition simulations (sessionmesh sim help)

Admin commands, talking to a running peer's HTTP API (sessionmesh help admin):
  status    this peer, its members and their reachability, its store
  peers     every known member; 'peers forget ID' drops one
  sync      run an anti-entropy round now and report what it repaired
  backup    write a consistent snapshot of the store to a file
  restore   restore a snapshot into an empty data directory (offline)

  help      print this text, or a command's: sessionmesh help <command>

Run 'sessionmesh <command> -h' for the flags of a command.
Quick start: 'sessionmesh serve' runs a peer with its data in
./sessionmesh-data and its HTTP API on 127.0.0.1:7480.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(rest, stdout, stderr)
	case "keygen":
		return keygen(rest, stdout, stderr)
	case "version":
		return version(rest, stdout, stderr)
	case "sim":
		return simulations.Main(rest, stdout, stderr)
	case "status":
		return status(rest, stdout, stderr)
	case "peers":
		return peers(rest, stdout, stderr)
	case "sync":
		return syncCmd(rest, stdout, stderr)
	case "backup":
		return backup(rest, stdout, stderr)
	case "restore":
		return restore(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		return help(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "sessionmesh: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	switch args[0] {
	case "serve", "keygen", "version":
		return run([]string{args[0], "-h"}, stdout, stderr)
	case "sim":
		return simulations.Main([]string{"help"}, stdout, stderr)
	case "admin", "status", "peers", "sync", "backup", "restore":
		fmt.Fprint(stdout, adminUsage)
		return 0
	}
	fmt.Fprintf(stderr, "sessionmesh help: unknown command %q\n\n%s", args[0], usage)
	return 2
}
