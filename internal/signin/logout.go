package signin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
	"github.com/signet-id/signet/internal/ui"
	"github.com/signet-id/signet/jwtverify"
)

// logoutRequest is a validated RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0).
type logoutRequest struct {
	client      *store.Client // nil when neither client_id nor id_token_hint named one
	redirectURI string        // a registered post_logout_redirect_uri, or ""
	state       string
	hintUser    string // the id_token_hint's subject, when one was sent
	hintSession string // its sid
}

// parseLogout checks end_session's parameters. Like the authorization endpoint, it never sends
// the browser to a URI the client did not register: without a client, or with an unregistered
// URI, the request is refused on a page.
func (h *Handler) parseLogout(ctx context.Context, form url.Values) (*logoutRequest, string) {
	lr := &logoutRequest{state: form.Get("state")}
	for _, name := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"} {
		if len(form[name]) > 1 {
			return nil, "The parameter " + name + " was sent more than once."
		}
	}
	clientID := form.Get("client_id")
	if hint := form.Get("id_token_hint"); hint != "" {
		a, inactive, err := h.Tokens.ResolveIDToken(ctx, hint, clientOrAny(clientID, hint))
		if err == nil && inactive != nil && (inactive.Code == "expired" || inactive.Code == "revoked" || inactive.Code == "principal") && inactive.Access != nil {
			// A hint names who to sign out; that its token has expired or its session ended
			// already does not make it less useful.
			a, inactive = inactive.Access, nil
		}
		if err != nil || inactive != nil {
			return nil, "The id_token_hint is not an ID token this server issued."
		}
		if clientID != "" && !slices.Contains(a.Audience, clientID) {
			return nil, "The id_token_hint was issued to another application than client_id names."
		}
		if clientID == "" && len(a.Audience) > 0 {
			clientID = a.Audience[0]
		}
		lr.hintUser, lr.hintSession = a.Subject, a.SessionID
	}
	if clientID != "" {
		c, err := h.Dir.Client(ctx, clientID)
		if err != nil {
			return nil, "The application that asked to sign you out (client_id) is not registered here."
		}
		lr.client = c
	}
	if uri := form.Get("post_logout_redirect_uri"); uri != "" {
		if lr.client == nil {
			return nil, "post_logout_redirect_uri was sent without client_id or id_token_hint, so it cannot be checked."
		}
		if !slices.Contains(lr.client.PostLogoutRedirectURIs, uri) {
			return nil, "post_logout_redirect_uri is not registered for this application."
		}
		lr.redirectURI = uri
	}
	return lr, ""
}

// clientOrAny picks the audience to check an id_token_hint against: client_id when sent, else the
// hint's own first audience (read unverified; ResolveIDToken then verifies everything).
func clientOrAny(clientID, hint string) string {
	if clientID != "" {
		return clientID
	}
	if t, err := jwtverify.ParseUnverified(hint); err == nil && len(t.Claims.Audience) > 0 {
		return t.Claims.Audience[0]
	}
	return ""
}

// logoutOf validates a logout request's parameters and reads the browser's session (nil: none);
// it answers the request itself and returns false when it cannot go on.
func (h *Handler) logoutOf(w http.ResponseWriter, r *http.Request, form url.Values) (*logoutRequest, *signedIn, bool) {
	req, problem := h.parseLogout(r.Context(), form)
	if problem != "" {
		h.UI.Render(w, http.StatusBadRequest, &ui.Error{Common: ui.Common{Title: "This sign-out link is not valid"}, Code: "invalid_request", Message: problem})
		return nil, nil, false
	}
	cur, err := h.current(r.Context(), r)
	if err != nil {
		h.serverFault(w, r, err)
		return nil, nil, false
	}
	return req, cur, true
}

// EndSession serves end_session (GET and POST). A hint naming the browser's session signs out at
// once; anything else asks the user first (a link on another site must not sign anyone out).
func (h *Handler) EndSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, http.StatusBadRequest, "This sign-out link is not valid", "Its parameters could not be read.")
		return
	}
	form := r.Form
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	req, cur, ok := h.logoutOf(w, r, form)
	if !ok {
		return
	}
	if cur == nil {
		h.loggedOut(w, r, req)
		return
	}
	if req.hintSession != "" && req.hintSession == cur.Session.ID && req.hintUser == cur.User.ID {
		h.endSession(ctx, r, cur.Session, "logout")
		h.cookies.clear(w, h.cookies.session)
		h.loggedOut(w, r, req)
		return
	}
	browser := h.browserID(w, r)
	page := &ui.LogoutConfirm{Common: ui.Common{Title: "Sign out?", CSRF: h.csrfToken(browser, "logout"), SignedInAs: cur.User.Username, AccountURL: AccountPath},
		Action: LogoutPath, ClientName: clientName(req.client)}
	if req.client != nil {
		page.Hidden = append(page.Hidden, ui.Field{Name: "client_id", Value: req.client.ID})
	}
	if req.redirectURI != "" {
		page.Hidden = append(page.Hidden, ui.Field{Name: "post_logout_redirect_uri", Value: req.redirectURI})
		page.FormTargets = []string{origin(req.redirectURI)}
	}
	if req.state != "" {
		page.Hidden = append(page.Hidden, ui.Field{Name: "state", Value: req.state})
	}
	h.UI.Render(w, http.StatusOK, page)
}

// logout is the confirmed sign-out (the form of LogoutConfirm, or the account page's button).
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || !h.checkCSRF(r, "logout") {
		h.showError(w, r, http.StatusForbidden, "This form has expired", "The sign-out form was not sent by Signet in this browser. Nothing was changed.")
		return
	}
	req, cur, ok := h.logoutOf(w, r, r.PostForm)
	if !ok {
		return
	}
	if cur != nil {
		h.endSession(ctx, r, cur.Session, "logout")
	}
	h.cookies.clear(w, h.cookies.session)
	h.loggedOut(w, r, req)
}

// loggedOut sends the browser to the registered post-logout URI, or shows the signed-out page.
func (h *Handler) loggedOut(w http.ResponseWriter, r *http.Request, req *logoutRequest) {
	if req.redirectURI != "" {
		target := req.redirectURI
		if req.state != "" {
			q := url.Values{"state": {req.state}}
			sep := "?"
			if u, err := url.Parse(target); err == nil && u.RawQuery != "" {
				sep = "&"
			}
			target += sep + q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	h.UI.Render(w, http.StatusOK, &ui.LoggedOut{Common: ui.Common{Title: "You have signed out"}})
}

// endSession ends a browser session: the session row, every token issued from it (revocation by
// sid reaches its access, refresh and ID tokens and whatever was exchanged from them), the audit
// record, and the back-channel notices of the clients it signed in to.
func (h *Handler) endSession(ctx context.Context, r *http.Request, s *store.BrowserSession, by string) {
	if err := h.Store.EndBrowserSession(ctx, s.ID, by, h.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		h.Log.Error("could not end a browser session", "err", err, "session", s.ID)
	}
	h.ended(ctx, s, s.UserID, by, requestDetails(r, nil))
}

// revokeSession revokes what a session issued, for as long as any of it could be presented.
func (h *Handler) revokeSession(ctx context.Context, id, by string, now time.Time) {
	rev := store.Revocation{Kind: store.RevokeSession, Value: id, At: now, ExpiresAt: tokens.KeepRevocationUntil(now.Add(h.TokenLife)),
		Reason: "browser session ended (" + by + ")"}
	if err := h.Tokens.Revoke(ctx, rev); err != nil {
		h.Log.Error("could not revoke the tokens of an ended browser session", "err", err, "session", id)
	}
}
