// Package redisfront answers the Redis protocol (RESP2, and RESP3 after
// HELLO 3) over a node's
// sessions, so that the Redis session stores of every web stack
// (connect-redis, phpredis, Flask-Session, Spring Session, scs' redisstore,
// ...) use a sessionmesh peer unchanged: point their Redis URL at it.
//
//	fr, err := redisfront.New(n, redisfront.Config{Registerer: reg})
//	ln, err := net.Listen("tcp", "127.0.0.1:6380")
//	go fr.Serve(ln)
//	...
//	err = fr.Shutdown(ctx)
//
// # Mapping
//
// A key is a session. Its id is derived from the key name (a SHA-256 of a
// SHA-256 of it, as the node derives ids from tokens), and the key name is
// kept in a reserved field of the session so that SCAN and KEYS can list
// it. A string is a session holding one value; a hash's fields are the
// session's fields, merged field by field across peers. EX and EXPIRE set
// the session's idle timeout and record an access: each save slides the
// window, bounded by the session's absolute lifetime. DEL destroys the
// session on every peer for good; a later SET of the same key creates a new
// session (a new id, one "generation" further) that no write to the old one
// can touch. RENAME is a renew: a new session under the new key's id, the
// old one destroyed. docs/redis.md has the details and the list of
// commands.
//
// # Serving
//
// The server is tidwall/redcon: a goroutine per connection, pipelined
// commands answered in one write. On Linux a connection's socket is read
// and written with raw system calls that wait in Go's network poller
// (rawio_linux.go): the runtime's system-call bookkeeping woke its sysmon
// thread between any two requests of a client, a fifth of the CPU of an
// unpipelined request. Reads are the node's local reads; writes
// are applied to the local store (durable as the node is configured) and
// broadcast in the background. Every command is counted, timed and its
// errors counted (sessionmesh_redis_*); connections beyond MaxClients,
// requests beyond MaxRequestBytes and wrong passwords get Redis's own
// errors; clients idle for IdleTimeout are closed.
//
// The package is public so that Go services embedding a node can serve it
// to their non-Go neighbours too; the daemon wires it to `sessionmesh serve
// --redis ADDR`.
package redisfront
