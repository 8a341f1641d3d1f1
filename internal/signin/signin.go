// Package signin serves interactive sign-in (SPEC §10): the authorization endpoint, the hosted
// sign-in pages (password, second factor, enrolment, password change, consent), the browser session
// that lets a user sign in once for every client, and RP-initiated logout. Codes it issues are
// redeemed by the token endpoint (oauth.Handler's authorization_code grant).
//
// A sign-in is a login request: the validated authorization request, stored with a short expiry and
// bound to the browser that started it, moved step by step (each POST redirects back to the request's
// page, which shows the next step) until a code is sent to the client.
package signin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/authorize"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/oidc"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
	"github.com/signet-id/signet/internal/ui"
)

// Paths.
const (
	AuthorizePath  = oidc.AuthorizePath
	EndSessionPath = oidc.EndSessionPath
	LoginPath      = "/ui/login/"
	stepPath       = LoginPath + "step"     // GET ?id=: the request's current step
	passwordPath   = LoginPath + "password" // POST
	factorPath     = LoginPath + "factor"   // POST: TOTP or recovery code
	enrolPath      = LoginPath + "enrol"    // POST: confirm a new TOTP factor
	recoveryPath   = LoginPath + "recovery" // POST: recovery codes seen
	changePath     = LoginPath + "change"   // POST: new password
	consentPath    = LoginPath + "consent"  // POST
	LogoutPath     = "/ui/logout"           // POST: confirm end_session
)

// Lifetimes that are the protocol's, not an operator's: a login request lasts as long as someone
// may reasonably take to sign in; a code only until the client's back end redeems it.
const (
	loginTTL = 10 * time.Minute
	codeTTL  = time.Minute
)

// Handler serves sign-in.
type Handler struct {
	Issuer  string
	Store   store.Store
	Dir     *directory.Directory
	Secrets *secrets.Keys
	Tokens  *tokens.Service
	Audit   *audit.Log
	UI      *ui.Renderer
	Log     *slog.Logger
	Now     func() time.Time
	// SessionTTL is how long a browser session lasts after its sign-in.
	SessionTTL time.Duration
	// TokenLife is the longest an access or ID token issued from a session lives: what ending the
	// session must reach.
	TokenLife time.Duration
	// MinPassword is the shortest password a user may choose.
	MinPassword int
	// TOTPIssuer names the provider in authenticator apps.
	TOTPIssuer string
	Throttle   Throttle
	// Logout tells clients with a back-channel logout URI that a session ended (nil: none do).
	Logout func(ctx context.Context, s *store.BrowserSession)

	cookies        cookies
	hashSlot       chan struct{}
	passwordChecks atomic.Uint64
}

// Init prepares a Handler whose fields are set: cookie names for the issuer, and the cap on
// concurrent password hashing (half the CPUs, at least one) so that a storm of sign-ins queues
// behind argon2id instead of starving token checks of CPU. Each hash also runs on a thread of its
// own at a lower scheduling priority (atLowPriority); `signet serve` adds a processor per slot
// (GOMAXPROCS) so that hashing never holds one that token checks need.
func (h *Handler) Init() {
	h.cookies = newCookies(h.Issuer)
	h.hashSlot = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.MinPassword == 0 {
		h.MinPassword = 12
	}
	h.Throttle.defaults()
}

// Routes registers the sign-in endpoints and pages.
func (h *Handler) Routes(route func(pattern, name string, h http.Handler)) {
	route("GET "+AuthorizePath, "authorize", http.HandlerFunc(h.Authorize))
	route("POST "+AuthorizePath, "authorize", http.HandlerFunc(h.Authorize))
	route("GET "+LoginPath+"{$}", "login", http.HandlerFunc(h.start))
	route("GET "+stepPath, "login", http.HandlerFunc(h.step))
	route("POST "+passwordPath, "login", http.HandlerFunc(h.password))
	route("POST "+factorPath, "login", http.HandlerFunc(h.factor))
	route("POST "+enrolPath, "login", http.HandlerFunc(h.enrol))
	route("POST "+recoveryPath, "login", http.HandlerFunc(h.recoverySeen))
	route("POST "+changePath, "login", http.HandlerFunc(h.changePassword))
	route("POST "+consentPath, "login", http.HandlerFunc(h.consent))
	route("GET "+EndSessionPath, "end_session", http.HandlerFunc(h.EndSession))
	route("POST "+EndSessionPath, "end_session", http.HandlerFunc(h.EndSession))
	route("POST "+LogoutPath, "end_session", http.HandlerFunc(h.logout))
	route("GET "+ui.StaticPath, "static", h.UI.Static())
	h.accountRoutes(route)
}

// pending is a login request's progress, stored as its Request.
type pending struct {
	// Request is the authorization request; nil when the user signs in to Signet's own pages.
	Request *authorize.Request `json:"request,omitempty"`
	// ReturnTo is the local page to go to after a sign-in without a client.
	ReturnTo string `json:"return_to,omitempty"`
	// Fresh asks for the password even when the browser has a session (prompt=login, an exceeded
	// max_age, another user hinted).
	Fresh bool `json:"fresh,omitempty"`
	// MFAAt is when a second factor was passed in this request, with which method.
	MFAAt     time.Time `json:"mfa_at,omitzero"`
	MFAMethod string    `json:"mfa_method,omitempty"`
	// PasswordChanged: a forced password change was done in this request.
	PasswordChanged bool `json:"password_changed,omitempty"`
	// RecoveryShown: new recovery codes were shown and acknowledged.
	RecoveryPending bool `json:"recovery_pending,omitempty"`
	Consented       bool `json:"consented,omitempty"`
	// Attempts counts wrong second-factor codes in this request; too many end it.
	Attempts int `json:"attempts,omitempty"`
}

func decodePending(lr *store.LoginRequest) (*pending, error) {
	var p pending
	if err := json.Unmarshal(lr.Request, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// save stores the request's progress.
func (h *Handler) save(ctx context.Context, lr *store.LoginRequest, p *pending) error {
	if err := encodeInto(lr, p); err != nil {
		return err
	}
	return h.Store.UpdateLoginRequest(ctx, lr)
}

// clientIP is the caller's address without port, for throttling, sessions and audit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// fail renders the error page for a request that cannot go on.
func (h *Handler) showError(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	page := &ui.Error{Common: ui.Common{Title: title}, Message: message}
	h.UI.Render(w, status, page)
}

// serverFault logs err and renders a page that says so without details.
func (h *Handler) serverFault(w http.ResponseWriter, r *http.Request, err error) {
	if store.Unavailable(err) {
		w.Header().Set("Retry-After", "2")
		h.Log.Warn("sign-in: store unavailable", "err", err, "path", r.URL.Path)
		h.showError(w, r, http.StatusServiceUnavailable, "Try again in a moment", "Signet cannot reach its database right now. Wait a moment and try again.")
		return
	}
	h.Log.Error("sign-in failed", "err", err, "path", r.URL.Path)
	h.showError(w, r, http.StatusInternalServerError, "Something went wrong", "Signet could not complete this step. Try again; if it keeps happening, tell your administrator (the server log has the details).")
}

// refuse delivers an authorization refusal: to the client when its redirect URI was validated,
// else on an error page (never to an unvalidated URI).
func (h *Handler) sendRefusal(w http.ResponseWriter, r *http.Request, ref *authorize.Refusal) {
	if !ref.Redirect {
		page := &ui.Error{Common: ui.Common{Title: "This sign-in link is not valid"}, Code: ref.Err.Code,
			Message: "The application sent a sign-in request Signet cannot accept, so you were not sent back to it.",
			Detail:  ref.Err.Description}
		h.UI.Render(w, http.StatusBadRequest, page)
		return
	}
	h.deliver(w, r, ref.To, ref.Params(h.Issuer))
}

// deliver sends an authorization response (code or error) to a validated redirect URI.
func (h *Handler) deliver(w http.ResponseWriter, r *http.Request, to authorize.Delivery, params map[string][]string) {
	if to.Mode == authorize.ModeFormPost {
		page := &ui.FormPost{Common: ui.Common{Title: "Continue"}, Action: to.RedirectURI}
		for name, vs := range params {
			for _, v := range vs {
				page.Fields = append(page.Fields, ui.Field{Name: name, Value: v})
			}
		}
		page.FormTargets = []string{origin(to.RedirectURI)}
		h.UI.Render(w, http.StatusOK, page)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to.URL(params), http.StatusSeeOther)
}

// refusal is an OAuth error for an authorization request whose redirect URI is valid.
func refusal(req *authorize.Request, err *oauth.Error) *authorize.Refusal {
	return &authorize.Refusal{Err: err, Redirect: true, To: req.To, State: req.State}
}

var errNoSession = errors.New("no browser session")
