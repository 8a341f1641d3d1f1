package signin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/ui"
)

// Account page paths.
const (
	AccountPath         = "/ui/account"
	accountSessionsPath = AccountPath + "/sessions" // POST: sign a session out
	accountTOTPPath     = AccountPath + "/totp"     // GET: enrol; POST: confirm
	accountTOTPDelete   = AccountPath + "/totp/remove"
	accountRecoveryPath = AccountPath + "/recovery" // POST: new recovery codes
	accountPasswordPath = AccountPath + "/password" // GET, POST
)

// accountPurpose keys the account forms' CSRF tokens.
const accountPurpose = "account"

func (h *Handler) accountRoutes(route func(pattern, name string, h http.Handler)) {
	route("GET "+AccountPath, "account", h.signedIn(h.account))
	// The recovery codes page's "continue" form (enrolment from the account page) posts here.
	route("POST "+AccountPath, "account", h.signedInPost(h.backToAccount))
	route("POST "+accountSessionsPath, "account", h.signedInPost(h.endSessions))
	route("GET "+accountTOTPPath, "account", h.signedIn(h.accountEnrol))
	route("POST "+accountTOTPPath, "account", h.signedInPost(h.accountConfirm))
	route("POST "+accountTOTPDelete, "account", h.signedInPost(h.removeTOTP))
	route("POST "+accountRecoveryPath, "account", h.signedInPost(h.newRecoveryCodes))
	route("GET "+accountPasswordPath, "account", h.signedIn(h.passwordPage))
	route("POST "+accountPasswordPath, "account", h.signedInPost(h.accountPassword))
}

// accountRequest is a request from a signed-in browser to its account pages.
type accountRequest struct {
	*signedIn
	browser string
}

// signedIn wraps an account page: a browser without a session is sent to sign in first and
// brought back.
func (h *Handler) signedIn(page func(http.ResponseWriter, *http.Request, *accountRequest)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur, err := h.current(r.Context(), r)
		if err != nil {
			h.serverFault(w, r, err)
			return
		}
		if cur == nil {
			http.Redirect(w, r, LoginPath+"?return_to="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		if err := h.Store.TouchBrowserSession(r.Context(), cur.Session.ID, h.Now()); err != nil {
			h.Log.Warn("could not record session activity", "err", err)
		}
		page(w, r, &accountRequest{signedIn: cur, browser: h.browserID(w, r)})
	})
}

// signedInPost wraps an account form: a session and the form's CSRF token are required.
func (h *Handler) signedInPost(action func(http.ResponseWriter, *http.Request, *accountRequest)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil || !h.checkCSRF(r, accountPurpose) {
			h.showError(w, r, http.StatusForbidden, "This form has expired", "The form was not sent by Signet in this browser, or it is too old. Go back, reload the page and try again.")
			return
		}
		cur, err := h.current(r.Context(), r)
		if err != nil {
			h.serverFault(w, r, err)
			return
		}
		if cur == nil {
			http.Redirect(w, r, LoginPath+"?return_to="+url.QueryEscape(AccountPath), http.StatusSeeOther)
			return
		}
		action(w, r, &accountRequest{signedIn: cur, browser: get(r, h.cookies.browser)})
	})
}

func (h *Handler) accountCommon(a *accountRequest, title string) ui.Common {
	return ui.Common{Title: title, CSRF: h.csrfToken(a.browser, accountPurpose), SignedInAs: a.User.Username, AccountURL: AccountPath}
}

// account shows the account page.
func (h *Handler) account(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	h.renderAccount(w, r, a, r.URL.Query().Get("done"))
}

// backToAccount answers a form that only leads back to the account page (the recovery codes page's
// "I have saved them"), keeping its message key.
func (h *Handler) backToAccount(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	http.Redirect(w, r, AccountPath+"?done="+url.QueryEscape(r.URL.Query().Get("done")), http.StatusSeeOther)
}

// Messages the account page shows after an action (by key, so a link cannot put text on it).
var accountMessages = map[string]string{
	"ended":    "The session was signed out.",
	"others":   "Every other session was signed out.",
	"totp":     "Two-step verification is on.",
	"removed":  "Two-step verification was removed.",
	"password": "Your password was changed.",
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, a *accountRequest, done string) {
	ctx := r.Context()
	u := a.User
	page := &ui.Account{Common: h.accountCommon(a, "Your account"), Username: u.Username, DisplayName: u.DisplayName, Email: u.Email,
		EnrollURL: accountTOTPPath, NewRecoveryAction: accountRecoveryPath, EndSessionAction: accountSessionsPath,
		ChangePasswordURL: accountPasswordPath, SignOutURL: EndSessionPath, Message: accountMessages[done]}
	sessions, err := h.Store.ListBrowserSessions(ctx, u.ID, h.Now())
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	for _, s := range sessions {
		page.Sessions = append(page.Sessions, ui.SessionRow{ID: s.ID, Device: ui.DeviceName(s.UserAgent), IP: s.IP, Started: s.CreatedAt,
			LastSeen: s.LastSeenAt, Methods: s.AMR, Current: s.ID == a.Session.ID})
	}
	f, err := h.Store.GetTOTP(ctx, u.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.serverFault(w, r, err)
		return
	}
	page.TOTPEnrolled = f != nil && !f.ConfirmedAt.IsZero()
	if page.TOTPEnrolled {
		if page.RecoveryLeft, err = h.Store.CountRecoveryCodes(ctx, u.ID); err != nil {
			h.serverFault(w, r, err)
			return
		}
	}
	required, err := h.mfaRequired(ctx, u)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	page.MFARequired = required
	if page.TOTPEnrolled && !required {
		page.RemoveTOTPAction = accountTOTPDelete
	}
	if page.Acts, err = h.actsOn(ctx, u.ID); err != nil {
		h.serverFault(w, r, err)
		return
	}
	h.UI.Render(w, http.StatusOK, page)
}

// mfaRequired reports whether the user must have a second factor (themselves or a role).
func (h *Handler) mfaRequired(ctx context.Context, u *store.User) (bool, error) {
	if u.MFARequired {
		return true, nil
	}
	return h.Dir.RequiresMFA(ctx, u.Roles)
}

// actsLimit bounds the "who acted as me" list on the page.
const actsLimit = 100

// actsOn lists the delegations and impersonations of a user, newest first, from the audit log
// (each opened session's record) and the sessions' current state (ended, and how).
func (h *Handler) actsOn(ctx context.Context, userID string) ([]ui.ActRow, error) {
	events, err := h.Store.ListAudit(ctx, store.AuditFilter{Subject: userID, Type: audit.TypeExchangeAllowed})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var rows []ui.ActRow
	for i := len(events) - 1; i >= 0 && len(rows) < actsLimit; i-- {
		sessionID := sessionOf(events[i].Details)
		if sessionID == "" || seen[sessionID] {
			continue
		}
		seen[sessionID] = true
		x, err := h.Store.GetExchangeSession(ctx, sessionID)
		if errors.Is(err, store.ErrNotFound) {
			continue // pruned long after it ended
		}
		if err != nil {
			return nil, err
		}
		row := ui.ActRow{Kind: x.Kind, Actor: h.partyName(ctx, x.Actor), Client: x.Client, Reason: x.Reason, Started: x.CreatedAt, Until: x.ExpiresAt, Ended: x.EndedAt, EndedHow: x.EndedBy}
		if row.Ended.IsZero() && h.Now().After(x.ExpiresAt) {
			row.Ended, row.EndedHow = x.ExpiresAt, "expired"
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// sessionOf reads the exchange session an exchange.allowed event opened.
func sessionOf(details []byte) string {
	var d struct {
		Session string `json:"session"`
	}
	if err := json.Unmarshal(details, &d); err != nil {
		return ""
	}
	return d.Session
}

// partyName names an actor for the page: a user's username, else the ID.
func (h *Handler) partyName(ctx context.Context, id string) string {
	if u, err := h.Dir.User(ctx, id); err == nil {
		return u.Username
	}
	if sa, err := h.Dir.ServiceAccount(ctx, id); err == nil {
		return sa.Name + " (service account)"
	}
	return id
}

// endSessions signs out one of the user's sessions, or every other one.
func (h *Handler) endSessions(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	ctx := r.Context()
	target := r.PostFormValue("session")
	if target == "others" {
		if _, err := h.endSessionsOf(ctx, r, a.User.ID, a.Session.ID, a.User.ID, "user:elsewhere"); err != nil {
			h.serverFault(w, r, err)
			return
		}
		http.Redirect(w, r, AccountPath+"?done=others", http.StatusSeeOther)
		return
	}
	s, err := h.Store.GetBrowserSession(ctx, target)
	if errors.Is(err, store.ErrNotFound) || err == nil && s.UserID != a.User.ID {
		h.showError(w, r, http.StatusNotFound, "No such session", "That session is not one of yours, or it has already ended.")
		return
	}
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	h.endSession(ctx, r, s, "user")
	if s.ID == a.Session.ID {
		h.cookies.clear(w, h.cookies.session)
		h.UI.Render(w, http.StatusOK, &ui.LoggedOut{Common: ui.Common{Title: "You have signed out"}})
		return
	}
	http.Redirect(w, r, AccountPath+"?done=ended", http.StatusSeeOther)
}

// ended revokes what an ended session issued, audits its end (actor: who ended it) and tells the
// clients it signed in to.
func (h *Handler) ended(ctx context.Context, s *store.BrowserSession, actor, by string, details map[string]any) {
	h.revokeSession(ctx, s.ID, by, h.Now())
	details["session"], details["by"] = s.ID, by
	if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeBrowserSessionEnd, Actor: actor, Subject: s.UserID, Details: details}); err != nil {
		h.Log.Error("could not audit the end of a browser session", "err", err, "session", s.ID)
	}
	if h.Logout != nil {
		h.Logout(ctx, s)
	}
}

// EndUserSessions ends every active browser session of a user, as when an operator locks or deletes
// the account: each session's tokens are revoked by sid, its end is audited with actor as the
// actor, and its clients are told, as when the user signs out. by says why ("locked", "deleted").
// It returns the IDs of the sessions it ended.
func (h *Handler) EndUserSessions(ctx context.Context, userID, actor, by string) ([]string, error) {
	return h.endSessionsOf(ctx, nil, userID, "", actor, by)
}

// endSessionsOf ends every active session of a user but except ("" for none) in one statement,
// then does for each what ending one does. r, when not nil, is the request that asked (its
// address and user agent go into the audit).
func (h *Handler) endSessionsOf(ctx context.Context, r *http.Request, userID, except, actor, by string) ([]string, error) {
	ended, err := h.Store.EndBrowserSessions(ctx, userID, except, by, h.Now())
	if err != nil {
		return nil, err
	}
	for _, id := range ended {
		h.ended(ctx, &store.BrowserSession{ID: id, UserID: userID}, actor, by, requestDetails(r, nil))
	}
	return ended, nil
}

// requestDetails adds to an audit event's details what it records of the request behind the
// action: the address and user agent (nothing for the CLI, whose r is nil).
func requestDetails(r *http.Request, details map[string]any) map[string]any {
	if details == nil {
		details = map[string]any{}
	}
	if r != nil {
		details["source_ip"], details["user_agent"] = clientIP(r), r.UserAgent()
	}
	return details
}

// accountEnrol shows TOTP enrolment from the account page.
func (h *Handler) accountEnrol(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	h.renderAccountEnrol(w, r, a, http.StatusOK, "")
}

func (h *Handler) renderAccountEnrol(w http.ResponseWriter, r *http.Request, a *accountRequest, status int, message string) {
	e, err := h.enrolment(r.Context(), a.User)
	if err != nil {
		if f, gerr := h.Store.GetTOTP(r.Context(), a.User.ID); gerr == nil && !f.ConfirmedAt.IsZero() {
			http.Redirect(w, r, AccountPath, http.StatusSeeOther)
			return
		}
		h.serverFault(w, r, err)
		return
	}
	h.UI.Render(w, status, &ui.EnrollTOTP{Common: h.accountCommon(a, "Set up two-step verification"), Action: accountTOTPPath,
		QRDataURI: e.QRDataURI(), Secret: e.Base32, Error: message})
}

// accountConfirm confirms an enrolment started on the account page and shows the recovery codes.
func (h *Handler) accountConfirm(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	ctx := r.Context()
	codes, message, err := h.confirmEnrolment(ctx, a.User, r.PostFormValue("code"))
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if message != "" {
		h.renderAccountEnrol(w, r, a, http.StatusBadRequest, message)
		return
	}
	// The session that proved the factor counts as having passed it now.
	s := a.Session
	amr := slices.Clone(s.AMR)
	for _, m := range []string{store.AMROTP, store.AMRMFA} {
		if !slices.Contains(amr, m) {
			amr = append(amr, m)
		}
	}
	if _, err := h.renew(ctx, w, s, s.AuthTime, amr, h.Now()); err != nil {
		h.Log.Warn("could not record a second factor in the session", "err", err, "session", s.ID)
	}
	h.UI.Render(w, http.StatusOK, &ui.RecoveryCodes{Common: h.accountCommon(a, "Save your recovery codes"), Action: AccountPath + "?done=totp", Codes: codes})
}

// removeTOTP removes the user's second factor and recovery codes (not allowed when one is required).
func (h *Handler) removeTOTP(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	ctx := r.Context()
	required, err := h.mfaRequired(ctx, a.User)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if required {
		h.showError(w, r, http.StatusForbidden, "Two-step verification is required", "Your organisation requires a second factor for your account, so it cannot be removed.")
		return
	}
	if err := h.Store.DeleteSecondFactors(ctx, a.User.ID); err != nil {
		h.serverFault(w, r, err)
		return
	}
	if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeMFAChanged, Actor: a.User.ID, Subject: a.User.ID, Details: map[string]any{"action": "totp removed"}}); err != nil {
		h.serverFault(w, r, err)
		return
	}
	http.Redirect(w, r, AccountPath+"?done=removed", http.StatusSeeOther)
}

// newRecoveryCodes replaces the user's recovery codes and shows the new ones once.
func (h *Handler) newRecoveryCodes(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	ctx := r.Context()
	f, err := h.Store.GetTOTP(ctx, a.User.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.ConfirmedAt.IsZero() {
		h.showError(w, r, http.StatusBadRequest, "No second factor", "Recovery codes come with two-step verification: set it up first.")
		return
	}
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	codes, err := h.storeRecoveryCodes(ctx, a.User.ID)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	if err := h.Audit.Record(ctx, audit.Event{Type: audit.TypeMFAChanged, Actor: a.User.ID, Subject: a.User.ID, Details: map[string]any{"action": "recovery codes replaced", "recovery_codes": len(codes)}}); err != nil {
		h.serverFault(w, r, err)
		return
	}
	h.UI.Render(w, http.StatusOK, &ui.RecoveryCodes{Common: h.accountCommon(a, "Save your recovery codes"), Action: AccountPath, Codes: codes})
}

// passwordPage shows the account's password change form.
func (h *Handler) passwordPage(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	h.UI.Render(w, http.StatusOK, &ui.ChangePassword{Common: h.accountCommon(a, "Change your password"), Action: accountPasswordPath, MinLength: h.MinPassword})
}

// accountPassword changes the password; every other session of the user is signed out.
func (h *Handler) accountPassword(w http.ResponseWriter, r *http.Request, a *accountRequest) {
	ctx := r.Context()
	if message := h.setPassword(ctx, r, a.User, r.PostFormValue("current_password"), r.PostFormValue("new_password"), r.PostFormValue("confirm_password")); message != "" {
		h.UI.Render(w, http.StatusBadRequest, &ui.ChangePassword{Common: h.accountCommon(a, "Change your password"), Action: accountPasswordPath, Error: message, MinLength: h.MinPassword})
		return
	}
	if _, err := h.endSessionsOf(ctx, r, a.User.ID, a.Session.ID, a.User.ID, "password changed"); err != nil {
		h.serverFault(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("%s?done=password", AccountPath), http.StatusSeeOther)
}
