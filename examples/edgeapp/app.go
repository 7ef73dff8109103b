package main

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/sessionmesh/sessionmesh/sessionhttp"
)

// newApp returns the service's handler; instance names the instance in
// responses, to show which one served a request.
//
//	GET  /         who is logged in and the counter
//	POST /login    form field user: RenewToken, then the user goes in the session
//	POST /count    adds one to the counter in the session
//	POST /logout   Destroy: the session ends on every instance
//
// State changes only on POST, behind http.CrossOriginProtection, and the
// cookie is SameSite=Lax: a cross-site page cannot count, log in or log out
// on the visitor's behalf.
func newApp(m *sessionhttp.Manager, instance string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		user := m.GetString(ctx, "user")
		if user == "" {
			user = "(not logged in)"
		}
		fmt.Fprintf(w, "%s: user %s, count %d\n", instance, user, m.GetInt(ctx, "count"))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		user := r.PostFormValue("user")
		if user == "" || len(user) > 64 || !utf8.ValidString(user) {
			http.Error(w, "login needs a user of 1 to 64 bytes", http.StatusBadRequest)
			return
		}
		// A real service checks a password here. Then, before recording
		// the new privileges: a new token, the old one destroyed.
		if err := m.RenewToken(ctx); err != nil {
			http.Error(w, "login failed, try again", http.StatusInternalServerError)
			return
		}
		if err := m.Put(ctx, "user", user); err != nil {
			http.Error(w, "login failed, try again", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s: logged in as %s\n", instance, user)
	})
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// Two concurrent increments of one session may count once: the
		// counter is one last-writer-wins field.
		count := m.GetInt(ctx, "count") + 1
		if err := m.Put(ctx, "count", count); err != nil {
			http.Error(w, "could not count", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s: count %d\n", instance, count)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Destroy(r.Context()); err != nil {
			http.Error(w, "logout failed, try again", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s: logged out\n", instance)
	})
	return http.NewCrossOriginProtection().Handler(m.LoadAndSave(mux))
}
