package signin

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
)

// cookies names and sets Signet's two cookies:
//   - the browser cookie: a random value that binds login requests to the browser that started
//     them (login CSRF: a request started elsewhere cannot be finished here) and keys the CSRF
//     tokens of every form;
//   - the session cookie: the browser session's ID and secret.
//
// Both are HttpOnly and SameSite=Lax. On an https issuer, and on localhost or a loopback address
// (which browsers treat as secure), they are Secure and carry the __Host- prefix, which also pins
// them to this host and path /. On another plain-http issuer browsers would drop such cookies, so
// they are sent without both (and the server warns at start).
type cookies struct {
	secure  bool
	browser string
	session string
}

func newCookies(issuer string) cookies {
	c := cookies{browser: "signet-browser", session: "signet-session"}
	if SecureContext(issuer) {
		c.secure, c.browser, c.session = true, "__Host-"+c.browser, "__Host-"+c.session
	}
	return c
}

// SecureContext reports whether browsers treat the issuer's origin as secure: https, localhost or
// a loopback address.
func SecureContext(issuer string) bool {
	u, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (c cookies) set(w http.ResponseWriter, name, value string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

func (c cookies) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

func get(r *http.Request, name string) string {
	ck, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

// browserTTL is how long the browser cookie lives: longer than any login request or session.
const browserTTL = 400 * 24 * time.Hour

// browserID returns the browser cookie's value, setting a new one when the request has none (or
// one that is not Signet's shape).
func (h *Handler) browserID(w http.ResponseWriter, r *http.Request) string {
	v := get(r, h.cookies.browser)
	if len(v) != 43 {
		v = secrets.RandomString(32)
		h.cookies.set(w, h.cookies.browser, v, browserTTL)
	}
	return v
}

// browserHash is what a login request stores of the browser cookie.
func (h *Handler) browserHash(browser string) []byte {
	return h.Secrets.HashToken("browser\x00" + browser)
}

// csrfToken is the token a form of purpose carries in this browser: a keyed hash of the browser
// cookie, so a page on another site can neither read nor forge it.
func (h *Handler) csrfToken(browser, purpose string) string {
	return base64.RawURLEncoding.EncodeToString(h.Secrets.HashToken("csrf\x00" + purpose + "\x00" + browser))
}

// checkCSRF verifies a POSTed form's csrf field for purpose.
func (h *Handler) checkCSRF(r *http.Request, purpose string) bool {
	browser := get(r, h.cookies.browser)
	got := r.PostFormValue("csrf")
	if browser == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.csrfToken(browser, purpose))) == 1
}

// signedIn is the browser's active session and its user.
type signedIn struct {
	Session *store.BrowserSession
	User    *store.User
}

// current returns the browser's active session and its user in good standing, or nil: a missing,
// forged, ended or expired session, or a locked or deleted user, all mean "not signed in".
func (h *Handler) current(ctx context.Context, r *http.Request) (*signedIn, error) {
	id, secret, ok := strings.Cut(get(r, h.cookies.session), ".")
	if !ok || id == "" || secret == "" {
		return nil, nil
	}
	s, err := h.Store.GetBrowserSession(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(s.SecretHash, h.sessionHash(secret)) != 1 || !s.Active(h.Now()) {
		return nil, nil
	}
	u, err := h.Dir.User(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if u.Locked {
		return nil, nil
	}
	return &signedIn{Session: s, User: u}, nil
}

func (h *Handler) sessionHash(secret string) []byte {
	return h.Secrets.HashToken("session\x00" + secret)
}

// setSession gives the browser the session's cookie.
func (h *Handler) setSession(w http.ResponseWriter, s *store.BrowserSession, secret string) {
	h.cookies.set(w, h.cookies.session, s.ID+"."+secret, s.ExpiresAt.Sub(h.Now()))
}

// origin is scheme://host of an absolute URI ("" when it has none), for CSP form-action.
func origin(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return ""
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Scheme + "://" + u.Host
}
