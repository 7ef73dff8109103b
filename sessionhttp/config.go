package sessionhttp

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Config configures a Manager. Start from DefaultConfig: the zero Config
// does not validate.
type Config struct {
	// IdleTimeout ends a session after this long without a request.
	// Default 30 minutes (OWASP: 15 to 30 minutes for low-risk
	// applications; ASVS v4 3.3.2 level 2).
	IdleTimeout time.Duration
	// Lifetime is the absolute lifetime of a session from its creation,
	// whatever its activity. RenewToken keeps the deadline (it does not
	// extend it). Default 12 hours (ASVS v4 3.3.2 level 2).
	Lifetime time.Duration

	// Cookie configures the session cookie.
	Cookie CookieConfig
	// Header configures tokens carried in a request header, for clients
	// that keep no cookies. Off by default.
	Header HeaderConfig

	// Codec turns values into field bytes and back. Default TypedCodec.
	Codec Codec

	// ClearSiteData is the value of the Clear-Site-Data header sent to
	// cookie clients with the logout response (Destroy). The default,
	// `"cookies"`, asks the browser to drop every cookie of the site, not
	// only the session cookie; set "" to send none.
	ClearSiteData string

	// Cacheable lets shared and browser caches keep responses to requests
	// that carry a live session. By default (false) such responses get
	// Cache-Control: no-store, since they may show what only that user
	// should see (ASVS v4 8.2.1); Vary: Cookie alone still lets a browser
	// cache serve them after logout. Set it only for handlers that write
	// their own Cache-Control.
	Cacheable bool

	// ErrorFunc answers a request whose session could not be loaded or
	// committed. It receives the underlying ResponseWriter. Default: log
	// the error with Logger and reply 500 with a generic message.
	ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives the manager's logs. Default slog.Default().
	Logger *slog.Logger
}

// CookieConfig configures the session cookie. The cookie is always
// HttpOnly, has Path=/ and no Domain (so it is never sent to another host):
// none of these is configurable.
type CookieConfig struct {
	// Name of the cookie. With Secure (the default) the cookie is sent as
	// "__Host-" + Name, which browsers accept only from a secure origin,
	// with Path=/ and without Domain, so a sibling subdomain cannot plant
	// or overwrite it. Default "session".
	Name string
	// Insecure drops the Secure attribute and the __Host- prefix, so that
	// the cookie works over plain http. For local development only.
	Insecure bool
	// SameSite of the cookie. The zero value means http.SameSiteLaxMode;
	// http.SameSiteNoneMode needs Secure.
	SameSite http.SameSite
	// Persist makes the cookie outlive the browser session: it carries
	// Expires and Max-Age up to the session's absolute deadline. Without it
	// (the default, as OWASP recommends) the cookie is a session cookie and
	// RememberMe makes individual sessions persistent. The idle timeout is
	// enforced by the server either way.
	Persist bool
}

// HeaderConfig configures tokens outside cookies, for API and mobile
// clients. A request that carries the header (or every request, with Only)
// is served as a header client: it is never sent a cookie, and when its
// session is created or renewed the new token is returned in the Response
// header, with Cache-Control: no-store. Tokens are never read from URLs.
type HeaderConfig struct {
	// Name of the request header that carries the token. "Authorization"
	// reads the Bearer scheme (RFC 6750); any other name carries the bare
	// token. Empty (the default) turns header tokens off.
	Name string
	// Response names the response header that carries a new token. Browser
	// code reading it across origins needs it listed in
	// Access-Control-Expose-Headers. Default "Session-Token".
	Response string
	// Version names the header that carries the session's version to a
	// header client and back (session consistency across peers: see the
	// package documentation). Default "Session-Version".
	Version string
	// Only serves every request as a header client, whether or not it
	// carries the header: cookies are neither read nor set. A client
	// without a token yet (its first login) is a header client only on a
	// header-only Manager, so mount API routes behind one; a cookie Manager
	// and a header-only Manager can share a node.
	Only bool
}

// DefaultConfig returns the configuration documented on each field:
// cookie tokens only, secure cookies, 30 minutes idle, 12 hours absolute.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:   30 * time.Minute,
		Lifetime:      12 * time.Hour,
		Cookie:        CookieConfig{Name: "session", SameSite: http.SameSiteLaxMode},
		Header:        HeaderConfig{Response: "Session-Token", Version: "Session-Version"},
		Codec:         TypedCodec{},
		ClearSiteData: `"cookies"`,
		Logger:        slog.Default(),
	}
}

// Validate checks the configuration with clear errors.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sessionhttp: config: "+format, args...)
	}
	switch {
	case c.IdleTimeout <= 0 || c.Lifetime <= 0:
		return bad("IdleTimeout and Lifetime must be positive")
	case c.IdleTimeout > c.Lifetime:
		return bad("IdleTimeout %v is longer than Lifetime %v", c.IdleTimeout, c.Lifetime)
	case !validToken(c.Cookie.Name):
		return bad("Cookie.Name %q is not a valid cookie name", c.Cookie.Name)
	case strings.HasPrefix(strings.ToLower(c.Cookie.Name), "__host-") || strings.HasPrefix(strings.ToLower(c.Cookie.Name), "__secure-"):
		return bad("Cookie.Name %q: leave the prefix out, it is added when the cookie is Secure", c.Cookie.Name)
	case c.Cookie.SameSite < 0 || c.Cookie.SameSite > http.SameSiteNoneMode:
		return bad("Cookie.SameSite %d is not a SameSite mode", c.Cookie.SameSite)
	case c.Cookie.SameSite == http.SameSiteNoneMode && c.Cookie.Insecure:
		return bad("Cookie.SameSite None needs a Secure cookie")
	case c.Header.Name != "" && !validToken(c.Header.Name):
		return bad("Header.Name %q is not a valid header name", c.Header.Name)
	case c.Header.Name != "" && !validToken(c.Header.Response):
		return bad("Header.Response %q is not a valid header name", c.Header.Response)
	case c.Header.Name != "" && !validToken(c.Header.Version):
		return bad("Header.Version %q is not a valid header name", c.Header.Version)
	case c.Header.Only && c.Header.Name == "":
		return bad("Header.Only needs Header.Name")
	case c.Codec == nil:
		return bad("Codec must be set")
	case c.Logger == nil:
		return bad("Logger must be set")
	case strings.ContainsAny(c.ClearSiteData, "\r\n"):
		return bad("ClearSiteData must be a single header line")
	}
	return nil
}

// validToken reports whether s is a non-empty RFC 7230 token, the syntax of
// cookie and header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
