// Package daemon is the sessionmesh peer daemon behind `sessionmesh serve`:
// its configuration (flags, SESSIONMESH_* environment variables and a JSON
// file), the HTTP API that services in other languages use, health and
// readiness probes, Prometheus metrics, key files, and the run loop with
// its graceful shutdown.
//
// # Running a peer
//
//	cfg, err := daemon.Load(args, os.LookupEnv) // flag > env > file > default
//	err = daemon.Run(ctx, cfg, logger, os.Stdout)
//
// Run opens the node (store and libp2p transport), binds the HTTP address,
// prints where it listens, and serves until ctx ends. Shutdown then runs in
// this order, each step logged: the HTTP server stops accepting and lets
// requests in flight finish (bounded by Config.ShutdownTimeout), then the
// node closes, which flushes pending deltas to the mesh and closes the
// store. Signals are the caller's business (cmd/sessionmesh cancels ctx on
// the first SIGINT or SIGTERM and exits at once on the second).
//
// # HTTP API
//
// NewHandler serves the API documented in docs/http-api.md: sessions under
// /v1/session (the token travels in the X-Session-Token header, never in
// the URL), /v1/peers, /healthz, /readyz and /metrics. With a bearer token
// configured, /v1/ and /metrics require "Authorization: Bearer <token>".
package daemon
