// Package sessionhttp is session middleware for net/http on a sessionmesh
// node: the sessions are read locally and replicated to every peer, and
// concurrent requests on one session merge per field.
//
// # Using it
//
//	n, err := p2pnode.Open(ctx, nodeCfg)
//	m, err := sessionhttp.New(n.Node, sessionhttp.DefaultConfig())
//	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
//		// ... check the credentials ...
//		if err := m.RenewToken(r.Context()); err != nil { ... } // new token, old one destroyed
//		m.Put(r.Context(), "user", name)
//	})
//	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
//		fmt.Fprintln(w, "hello", m.GetString(r.Context(), "user"))
//	})
//	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
//		m.Destroy(r.Context()) // final on every peer
//	})
//	http.ListenAndServe(addr, m.LoadAndSave(mux))
//
// # A request's life
//
// LoadAndSave reads the session of the request's token from the local store
// (no network) and records the access. The handler reads and changes
// values through the Manager with the request's context; Put encodes the
// value at once (Config.Codec) and returns an error wrapping ErrEncode for
// a value the codec cannot encode. Right before the response header is
// written (the first WriteHeader, Write, Flush or Hijack, or when the
// handler returns without writing) the Manager commits the keys this
// request changed, and only those, in one node update: a concurrent request
// that changed other keys of the same session, here or on another peer,
// keeps its changes. Two requests that change the same key: the later
// write wins, everywhere. Changes made after the header went out (a
// streaming handler) are committed when the handler returns, to the
// session the request already has; calls that would need a new token to
// reach the client by then (RenewToken, a first Put without a session) fail
// with ErrTooLate.
//
// A request that never writes gets no session and no cookie. The first
// write creates the session, under a 256-bit token the node draws from its
// random source (crypto/rand unless configured otherwise); the client gets
// it in the cookie, or in a response header (HeaderConfig). A token the request carries that has no session (never
// issued, expired, destroyed, or forged) is never adopted: the request runs
// without a session, and if it writes, the new session gets a fresh token
// that replaces the old one. Read-only requests leave a stale cookie in
// place, because a token can be unknown here only for the few milliseconds
// its creation takes to reach this peer.
//
// RenewToken, called at login (and at any change of privilege), moves the
// session to a new token and destroys the old one everywhere. Destroy, at
// logout, destroys the session for good on every peer: no write, however
// late, brings it back. Its response expires the cookie and carries
// Cache-Control: no-store and Clear-Site-Data.
//
// # Consistency across peers
//
// Behind a balancer without sticky routing, consecutive requests of one
// browser reach different peers, and a peer may not have received the
// previous request's write yet. The Manager handles this by itself: next
// to the session cookie it sends a version cookie (the session cookie's
// name plus "-version", same attributes), or the Session-Version header to
// header clients (HeaderConfig.Version), holding the session's version as
// this client last saw it (node.Version). LoadAndSave hands it to the node,
// which serves the request only from a copy at least that recent: it waits
// for replication, then asks the peers that wrote it, and after
// node.Config.ConsistencyWait (200 ms) fails with node.ErrStale (the
// default ErrorFunc answers 503 with Retry-After, as it does for
// node.ErrUnavailable, a session no holder answered for under partial
// replication) rather than let the
// handler read, and write back, older data. So a client reads its own
// writes and never goes back in time, on any peer. The version is sent
// when a request wrote, or saw newer data than the client carried; a
// read-only visitor gets no cookie. docs/consistency.md has the details.
//
// # Owners and "log out everywhere"
//
// SetOwner, called at login next to RenewToken, makes the application user
// the session's owner. RevokeOwner ends every session of a user on every
// peer, for good (the revocation is a register no write can undo), keeping
// the current one under a new token if asked. The node lists and destroys
// a user's sessions (node.OwnerSessions, node.DestroyOwned). The node keeps
// only a hash of the user id.
//
// # Security defaults
//
// The cookie is HttpOnly, Secure, SameSite=Lax, Path=/, without Domain,
// and named with the __Host- prefix (OWASP session management cheat sheet,
// ASVS v4 section 3); CookieConfig.Insecure turns Secure and the prefix off
// for local http. It is a browser-session cookie unless CookieConfig.Persist
// or RememberMe. Sessions end after 30 minutes idle and 12 hours in all.
// Tokens never appear in URLs or logs. Every response through LoadAndSave
// carries Vary: Cookie; every response to a request that carries or starts a
// live session, and the logout response, carries Cache-Control: no-store
// (Config.Cacheable turns that off for handlers that set their own; then
// responses that set a cookie still get Cache-Control: no-cache="Set-Cookie"). SameSite=Lax keeps cross-site POSTs
// from carrying the cookie; it is not a full CSRF defence (state changed on
// GET, same-site subdomains): put http.CrossOriginProtection in front of
// LoadAndSave, as examples/edgeapp does.
//
// # Streaming and upgrades
//
// The ResponseWriter handed to the handler implements http.Flusher,
// http.Hijacker and io.ReaderFrom and unwraps (Unwrap) for
// http.ResponseController, so deadlines, full duplex, server-sent events
// and WebSocket upgrades work through it. Flush and Hijack commit the
// session first: a streamed response gets its cookie, and a handler that
// writes its own handshake after a hijack finds Set-Cookie in Header().
// After a hijack nothing more is written to the connection.
//
// # Moving from scs
//
// The per-request API is scs's: Get, Put, Pop, Remove, Exists, Keys,
// Clear, RenewToken, Destroy, RememberMe, Token, Deadline and the typed
// getters (GetString, GetInt, GetBool, GetTime, GetBytes, ...), all taking
// the request's context. The differences:
//
//   - Configuration is a Config (from DefaultConfig) given to New, not
//     fields set on the manager. scs's Lifetime and IdleTimeout keep their
//     names; Cookie.Secure becomes Cookie.Insecure (secure unless said
//     otherwise); Cookie.HttpOnly, Path and Domain are gone (always
//     HttpOnly, Path=/, no Domain); Cookie.Persist defaults to false.
//   - The cookie is named "__Host-session" rather than "session": users
//     sign in again once after the switch.
//   - Put returns an error (ignoring it compiles as before) instead of
//     failing the whole request at commit, and values are encoded one by one
//     (TypedCodec, gob for other types: keep your gob.Register calls).
//   - RenewToken keeps the absolute deadline instead of restarting it.
//   - There is no Store, Iterate, MergeSession or SetDeadline: the node is
//     the store. Applications that must keep scs itself can use the node as
//     an scs.Store through package scsstore, at the price of per-session
//     rather than per-field merging.
//   - Handlers that panic commit nothing, as with scs.
package sessionhttp
