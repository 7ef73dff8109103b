// Package scsstore keeps github.com/alexedwards/scs/v2 sessions on a
// sessionmesh node: an existing scs application switches its store in one
// line and its sessions are replicated to every peer.
//
//	sessionManager := scs.New()
//	sessionManager.Store = scsstore.New(n) // n is a *node.Node
//
// Store implements scs.Store, scs.CtxStore and scs.IterableStore.
//
// # One blob per session: merging is per session, not per field
//
// scs hands its store one encoded blob per session. The adapter keeps it in
// one field of a node session, so two requests that commit the same session
// concurrently, on one peer or on two, do not merge: the later commit
// replaces the whole blob and the other request's changes are lost, as with
// any scs store. Package sessionhttp, the native middleware, commits only
// the keys a request changed, so that concurrent requests keep each
// other's changes; prefer it for new code.
//
// # Tokens, expiry and logout
//
// scs draws its own tokens (32 random bytes in unpadded base64url); the
// node session is stored under their SHA-256 like every node session, and
// with scs's HashTokenInStore the store only ever sees a hash of the
// cookie's value. A token of any other form is refused (ErrToken).
//
// scs's expiry (absolute deadline, or idle timeout renewed at every commit)
// is stored with the blob and checked by Find. The node session behind it
// lives at least Options.Lifetime from its creation; its deadline is fixed
// then (a commit whose expiry lies beyond it is refused with ErrRefused),
// and the node collects it after that deadline.
//
// Delete (scs's Destroy and RenewToken) destroys the node session for good
// on every peer: a commit that comes later for the same token, from a
// request that raced the logout, is dropped rather than bringing the
// session back.
//
// Values are limited by the node's field size (64 KiB of encoded session
// by default); a bigger commit fails with an error wrapping ErrRefused.
//
// # Iteration
//
// All (scs's Iterate) needs the token of each session, which the node does
// not keep: turn on Options.Iterable, ideally together with scs's
// HashTokenInStore (see Options). All reads the whole local store.
package scsstore
