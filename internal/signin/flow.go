package signin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/authorize"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/ui"
)

// Authentication context classes (acr) Signet asserts, and accepts in acr_values.
const (
	ACRPassword = "password" // a password alone
	ACRMFA      = "mfa"      // a password and a second factor
)

// ACRValues lists the classes for discovery.
var ACRValues = []string{ACRPassword, ACRMFA}

func acrOf(s *store.BrowserSession) string {
	if s.MFAAt.IsZero() {
		return ACRPassword
	}
	return ACRMFA
}

// need is what stands between a user and a code.
type need struct {
	passwordChange bool
	mfa            bool // a second factor must be passed (or enrolled first, when enrol is set)
	enrol          bool
	consent        bool
}

func (n need) none() bool { return !n.passwordChange && !n.mfa && !n.consent }

// silentRefusal is prompt=none's answer when something needs a page (OIDC Core §3.1.2.6).
func (n need) silentRefusal() *oauth.Error {
	switch {
	case n.passwordChange:
		return oauth.InteractionRequired("the user must change their password before signing in; send the user to sign in without prompt=none")
	case n.mfa:
		return oauth.InteractionRequired("a second factor is needed for this sign-in; send the user to sign in without prompt=none")
	case n.consent:
		return oauth.ConsentRequired("the user has not allowed this client the requested scopes; send the user to sign in without prompt=none to ask")
	}
	return nil
}

// needs works out what the user must still do in this request. s is the browser's session when
// it belongs to u (nil otherwise); client is nil for a sign-in to Signet's own pages.
func (h *Handler) needs(ctx context.Context, u *store.User, client *store.Client, p *pending, s *store.BrowserSession) (need, error) {
	var n need
	n.passwordChange = u.PasswordChangeRequired && !p.PasswordChanged
	totp, err := h.Store.GetTOTP(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		totp = nil
	case err != nil:
		return n, err
	}
	enrolled := totp != nil && !totp.ConfirmedAt.IsZero()
	required := enrolled || u.MFARequired || client != nil && client.RequireMFA ||
		p.Request != nil && slices.Contains(p.Request.ACRValues, ACRMFA) && !slices.Contains(p.Request.ACRValues, ACRPassword)
	if !required {
		if required, err = h.Dir.RequiresMFA(ctx, u.Roles); err != nil {
			return n, err
		}
	}
	if required && !h.mfaPassed(u, p, s) {
		n.mfa, n.enrol = true, !enrolled
	}
	if client != nil && p.Request != nil && !p.Consented && (client.ThirdParty || p.Request.HasPrompt(authorize.PromptConsent)) {
		c, err := h.Store.GetConsent(ctx, u.ID, client.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			n.consent = true
		case err != nil:
			return n, err
		default:
			n.consent = p.Request.HasPrompt(authorize.PromptConsent) || !covers(c.Scope, p.Request.Scope)
		}
	}
	return n, nil
}

// mfaPassed reports whether a second factor counts for this request: passed in it, or in the
// browser's session of the same user when no fresh sign-in was asked for (within max_age).
func (h *Handler) mfaPassed(u *store.User, p *pending, s *store.BrowserSession) bool {
	if !p.MFAAt.IsZero() {
		return true
	}
	if s == nil || s.UserID != u.ID || s.MFAAt.IsZero() || p.Fresh {
		return false
	}
	return p.Request == nil || !p.Request.HasMaxAge || h.Now().Sub(s.MFAAt) <= p.Request.MaxAge
}

func covers(granted, asked []string) bool {
	for _, s := range asked {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

// loaded is a login request being continued, with everything its step needs.
type loaded struct {
	lr      *store.LoginRequest
	p       *pending
	client  *store.Client // nil for a sign-in to Signet's own pages
	browser string
	cur     *signedIn // the browser's session, when there is one
}

// load reads the login request a step is for and checks it may be continued here: it exists, is
// not finished or expired, belongs to this browser (login CSRF), and for a POST, the form's CSRF
// token. It renders the error page and returns nil otherwise.
func (h *Handler) load(w http.ResponseWriter, r *http.Request, post bool) *loaded {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	if post {
		id = r.PostFormValue("id")
	}
	lr, err := h.Store.GetLoginRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !h.Now().Before(lr.ExpiresAt) {
		h.showError(w, r, http.StatusBadRequest, "This sign-in has expired",
			"Sign-in requests are good for 10 minutes. Go back to the application and sign in again.")
		return nil
	}
	if err != nil {
		h.serverFault(w, r, err)
		return nil
	}
	browser := get(r, h.cookies.browser)
	if browser == "" || !equalHash(lr.BrowserHash, h.browserHash(browser)) {
		h.showError(w, r, http.StatusForbidden, "Sign in from where you started",
			"This sign-in was started in another browser (or this browser's cookies were cleared). For your safety it can only be finished where it began: go back to the application and sign in again.")
		return nil
	}
	if post && !h.checkCSRF(r, lr.ID) {
		h.showError(w, r, http.StatusForbidden, "This form has expired",
			"The page was not sent by Signet in this browser, or it is too old. Go back, reload the page and try again.")
		return nil
	}
	if !lr.DoneAt.IsZero() {
		h.showError(w, r, http.StatusBadRequest, "This sign-in is already finished",
			"You have already completed (or cancelled) this sign-in. Go back to the application; if it is not signed in, sign in again from there.")
		return nil
	}
	p, err := decodePending(lr)
	if err != nil {
		h.serverFault(w, r, fmt.Errorf("login request %s: %w", lr.ID, err))
		return nil
	}
	l := &loaded{lr: lr, p: p, browser: browser}
	if lr.ClientID != "" {
		c, err := h.Dir.Client(ctx, lr.ClientID)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && c.Disabled:
			h.showError(w, r, http.StatusBadRequest, "This application is no longer available",
				"The application you were signing in to was removed or disabled while you were signing in.")
			return nil
		case err != nil:
			h.serverFault(w, r, err)
			return nil
		}
		l.client = c
	}
	if l.cur, err = h.current(ctx, r); err != nil {
		h.serverFault(w, r, err)
		return nil
	}
	return l
}

func equalHash(a, b []byte) bool { return len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1 }

// step shows the request's next page, or finishes it.
func (h *Handler) step(w http.ResponseWriter, r *http.Request) {
	l := h.load(w, r, false)
	if l == nil {
		return
	}
	h.next(w, r, l, http.StatusOK, "")
}

// next renders what the request needs now, with an error message for the page when there is one,
// or finishes it.
func (h *Handler) next(w http.ResponseWriter, r *http.Request, l *loaded, status int, message string) {
	ctx := r.Context()
	u, err := h.userOf(ctx, l)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if u == nil {
		h.renderLogin(w, r, l, status, message)
		return
	}
	var s *store.BrowserSession
	if l.cur != nil && l.cur.User.ID == u.ID {
		s = l.cur.Session
	}
	n, err := h.needs(ctx, u, l.client, l.p, s)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	common := h.common(l)
	switch {
	case n.passwordChange:
		h.UI.Render(w, status, &ui.ChangePassword{Common: titled(common, "Choose a new password"), Action: changePath, Hidden: hidden(l), Error: message, MinLength: h.MinPassword, Forced: true})
	case n.mfa && n.enrol:
		h.renderEnrol(w, r, l, u, status, message)
	case n.mfa:
		h.UI.Render(w, status, &ui.SecondFactor{Common: titled(common, "Enter your verification code"), Action: factorPath, Hidden: hidden(l), Error: message, Username: u.Username})
	case l.p.RecoveryPending:
		// Codes were shown with the enrolment's confirmation; the POST that acknowledges them
		// clears this. Reloading does not show them again: they are stored hashed.
		h.UI.Render(w, status, &ui.RecoveryCodes{Common: titled(common, "Save your recovery codes"), Action: recoveryPath, Hidden: hidden(l)})
	case n.consent:
		page := &ui.Consent{Common: titled(common, "Allow access?"), Action: consentPath, Hidden: hidden(l), ClientName: clientName(l.client), Username: u.Username}
		for _, s := range l.p.Request.Scope {
			page.Scopes = append(page.Scopes, ui.Scope{Name: s, Description: scopeDescription(s)})
		}
		h.UI.Render(w, status, page)
	default:
		h.finish(w, r, l, u)
	}
}

// userOf is the user this request is for: identified by a password in it, or by the browser's
// session when no fresh sign-in is needed. nil: the password page comes next.
func (h *Handler) userOf(ctx context.Context, l *loaded) (*store.User, error) {
	id := l.lr.UserID
	if id == "" {
		if l.cur == nil || l.p.Fresh {
			return nil, nil
		}
		if !hints(l.p.hint(), l.cur.User) {
			return nil, nil
		}
		return l.cur.User, nil
	}
	u, err := h.Dir.User(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil || u.Locked {
		return nil, err
	}
	return u, nil
}

func (p *pending) hint() string {
	if p.Request == nil {
		return ""
	}
	return p.Request.LoginHint
}

func (h *Handler) common(l *loaded) ui.Common {
	c := ui.Common{CSRF: h.csrfToken(l.browser, l.lr.ID)}
	if l.cur != nil {
		c.SignedInAs, c.AccountURL = l.cur.User.Username, AccountPath
	}
	if l.p.Request != nil {
		c.FormTargets = []string{origin(l.p.Request.To.RedirectURI)}
	}
	return c
}

func titled(c ui.Common, title string) ui.Common { c.Title = title; return c }

func hidden(l *loaded) []ui.Field { return []ui.Field{{Name: "id", Value: l.lr.ID}} }

func clientName(c *store.Client) string {
	if c == nil {
		return ""
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, l *loaded, status int, message string) {
	page := &ui.Login{Common: titled(h.common(l), "Sign in"), Action: passwordPath, Hidden: hidden(l), ClientName: clientName(l.client), Error: message}
	page.Username = l.p.hint()
	if typed := strings.TrimSpace(r.PostFormValue("username")); typed != "" && len(typed) <= 256 && utf8.ValidString(typed) {
		// The form is shown again (wrong password, throttled): keep what the person typed.
		page.Username = typed
	}
	if page.Username == "" && l.cur != nil {
		page.Username = l.cur.User.Username
	}
	h.UI.Render(w, status, page)
}

// scopeDescription says what a scope lets a client do, for the consent page.
func scopeDescription(s string) string {
	switch s {
	case oauth.ScopeOpenID:
		return "Know who you are (your user ID)"
	case "profile":
		return "See your username and name"
	case "email":
		return "See your email address"
	case "roles":
		return "See your roles"
	case oauth.ScopeOfflineAccess:
		return "Keep access while you are away (a refresh token)"
	}
	return "Use the permission \u201c" + s + "\u201d"
}

// finish ends a login request: the session is created (or renewed) from what was proved in it,
// the request is marked done (once, however many tabs post it), and the code goes to the client.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, l *loaded, u *store.User) {
	ctx := r.Context()
	now := h.Now()
	s, err := h.establish(ctx, w, r, l, u, now)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if err := h.Store.FinishLoginRequest(ctx, l.lr.ID, now); errors.Is(err, store.ErrConflict) {
		h.showError(w, r, http.StatusBadRequest, "This sign-in is already finished",
			"This sign-in was completed in another tab. Go back to the application.")
		return
	} else if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if l.p.Request == nil {
		if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeSignInSucceeded, Subject: u.ID, Details: requestDetails(r, map[string]any{
			"session": s.ID, "amr": s.AMR, "acr": acrOf(s)})}); err != nil {
			h.serverFault(w, r, err)
			return
		}
		http.Redirect(w, r, l.p.ReturnTo, http.StatusSeeOther)
		return
	}
	h.issue(w, r, l.client, l.p, u, s)
}

// establish returns the browser session the request ends in. What was proved in this request
// renews the browser's session of the same user (new secret: a cookie seen before the sign-in is
// worth nothing after it) or starts a new one, replacing another user's; a request that proved
// nothing new continues the session it was continued with.
func (h *Handler) establish(ctx context.Context, w http.ResponseWriter, r *http.Request, l *loaded, u *store.User, now time.Time) (*store.BrowserSession, error) {
	same := l.cur != nil && l.cur.User.ID == u.ID
	if l.lr.PasswordAt.IsZero() && l.p.MFAAt.IsZero() {
		if !same {
			return nil, errNoSession
		}
		return l.cur.Session, nil
	}
	amr, authTime, mfaAt := []string{}, l.lr.PasswordAt, l.p.MFAAt
	if !l.lr.PasswordAt.IsZero() {
		amr = append(amr, store.AMRPassword)
	} else {
		// A step-up in a session: the password was proved when the session began.
		amr, authTime = slices.Clone(l.cur.Session.AMR), l.cur.Session.AuthTime
		amr = slices.DeleteFunc(amr, func(m string) bool { return m == store.AMRMFA })
	}
	if !mfaAt.IsZero() {
		if !slices.Contains(amr, l.p.MFAMethod) {
			amr = append(amr, l.p.MFAMethod)
		}
		amr = append(amr, store.AMRMFA)
	} else if same && !l.cur.Session.MFAAt.IsZero() && !l.p.Fresh {
		// The password was typed again in a session whose second factor still counts: keep it,
		// with the methods that proved it.
		mfaAt = l.cur.Session.MFAAt
		for _, m := range l.cur.Session.AMR {
			if m != store.AMRPassword && !slices.Contains(amr, m) {
				amr = append(amr, m)
			}
		}
	}
	if same {
		return h.renew(ctx, w, l.cur.Session, authTime, amr, mfaAt)
	}
	if l.cur != nil {
		// Another user signs in in this browser: the previous user's session ends here.
		h.endSession(ctx, r, l.cur.Session, "replaced")
	}
	secret := secrets.RandomString(32)
	s := &store.BrowserSession{
		ID: "bs-" + secrets.NewSortableID(now), SecretHash: h.sessionHash(secret), UserID: u.ID, CreatedAt: now,
		AuthTime: authTime, AMR: amr, MFAAt: mfaAt, LastSeenAt: now, ExpiresAt: now.Add(h.SessionTTL),
		IP: clientIP(r), UserAgent: clip(r.UserAgent(), 256),
	}
	if err := h.Store.CreateBrowserSession(ctx, s); err != nil {
		return nil, err
	}
	h.setSession(w, s, secret)
	return s, nil
}

// renew records a new authentication in an active session under a new secret (a cookie seen
// before it is worth nothing after it), gives the browser the new cookie and returns the session
// as it now stands.
func (h *Handler) renew(ctx context.Context, w http.ResponseWriter, s *store.BrowserSession, authTime time.Time, amr []string, mfaAt time.Time) (*store.BrowserSession, error) {
	secret := secrets.RandomString(32)
	if err := h.Store.ReauthBrowserSession(ctx, s.ID, h.sessionHash(secret), authTime, amr, mfaAt); err != nil {
		return nil, err
	}
	renewed := *s
	renewed.AuthTime, renewed.AMR, renewed.MFAAt = authTime, amr, mfaAt
	h.setSession(w, &renewed, secret)
	return &renewed, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func encodeInto(lr *store.LoginRequest, p *pending) error {
	b, err := json.Marshal(p)
	lr.Request = b
	return err
}
