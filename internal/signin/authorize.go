package signin

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/authorize"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
)

// Authorize serves the authorization endpoint (OIDC Core §3.1.2, GET and POST). A browser with a
// session that satisfies the request gets its code at once; otherwise a login request is stored
// and the browser is sent to its first page. prompt=none never shows a page.
func (h *Handler) Authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		h.showError(w, r, http.StatusBadRequest, "This sign-in link is not valid", "The request's parameters could not be read: "+err.Error())
		return
	}
	form := r.Form
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	var client *store.Client
	if ids := form["client_id"]; len(ids) == 1 && ids[0] != "" {
		c, err := h.Dir.Client(ctx, ids[0])
		switch {
		case err == nil:
			client = c
		case !errors.Is(err, store.ErrNotFound):
			h.serverFault(w, r, err)
			return
		}
	}
	req, ref := authorize.Parse(form, client)
	if ref != nil {
		h.sendRefusal(w, r, ref)
		return
	}
	now := h.Now()
	cur, err := h.current(ctx, r)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	p := &pending{Request: req}
	if req.IDTokenHint != "" {
		sub, ok := h.hintedUser(ctx, req.IDTokenHint, client.ID)
		if !ok {
			h.sendRefusal(w, r, refusal(req, oauth.InvalidRequest("id_token_hint is not an ID token this server issued to client '%s'", client.ID)))
			return
		}
		if cur != nil && cur.User.ID != sub {
			// The application expects another user than the one signed in here.
			if req.HasPrompt(authorize.PromptNone) {
				h.sendRefusal(w, r, refusal(req, oauth.LoginRequired("the user of id_token_hint is not the one signed in; send the user to sign in without prompt=none")))
				return
			}
			p.Fresh = true
		}
	}
	if cur != nil && (req.HasPrompt(authorize.PromptLogin) || req.HasPrompt(authorize.PromptSelectAccount) || tooOld(cur.Session, req, now)) {
		p.Fresh = true
	}
	if cur != nil && !p.Fresh && !hints(req.LoginHint, cur.User) {
		// The application expects someone else: the signed-in user is not silently handed over.
		if req.HasPrompt(authorize.PromptNone) {
			h.sendRefusal(w, r, refusal(req, oauth.LoginRequired("the user of login_hint is not the one signed in; send the user to sign in without prompt=none")))
			return
		}
		p.Fresh = true
	}
	if req.HasPrompt(authorize.PromptNone) {
		switch {
		case cur == nil:
			h.sendRefusal(w, r, refusal(req, oauth.LoginRequired("no user is signed in in this browser; send the user to sign in without prompt=none")))
			return
		case p.Fresh:
			h.sendRefusal(w, r, refusal(req, oauth.LoginRequired("the sign-in is older than max_age allows; send the user to sign in again without prompt=none")))
			return
		}
		need, err := h.needs(ctx, cur.User, client, p, cur.Session)
		if err != nil {
			h.serverFault(w, r, err)
			return
		}
		if e := need.silentRefusal(); e != nil {
			h.sendRefusal(w, r, refusal(req, e))
			return
		}
		h.issue(w, r, client, p, cur.User, cur.Session)
		return
	}
	if cur != nil && !p.Fresh {
		need, err := h.needs(ctx, cur.User, client, p, cur.Session)
		if err != nil {
			h.serverFault(w, r, err)
			return
		}
		if need.none() {
			h.issue(w, r, client, p, cur.User, cur.Session)
			return
		}
	}
	h.begin(w, r, client.ID, p)
}

// hints reports whether a login_hint names u (its username or email) or is absent.
func hints(hint string, u *store.User) bool {
	return hint == "" || strings.EqualFold(hint, u.Username) || u.Email != "" && strings.EqualFold(hint, u.Email)
}

// tooOld reports whether a session's authentication is older than the request's max_age.
func tooOld(s *store.BrowserSession, req *authorize.Request, now time.Time) bool {
	return req != nil && req.HasMaxAge && now.Sub(s.AuthTime) > req.MaxAge
}

// hintedUser verifies an id_token_hint: an ID token this server issued to the client, expired or
// not (OIDC Core §3.1.2.1: the hint names a user, it authorizes nothing). It returns the subject.
func (h *Handler) hintedUser(ctx context.Context, raw, client string) (string, bool) {
	a, inactive, err := h.Tokens.ResolveIDToken(ctx, raw, client)
	if err != nil {
		return "", false
	}
	if inactive != nil {
		if inactive.Code != "expired" || inactive.Access == nil {
			return "", false
		}
		a = inactive.Access
	}
	return a.Subject, a.Subject != ""
}

// begin stores a login request for this browser and sends the browser to its first page.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, clientID string, p *pending) {
	browser := h.browserID(w, r)
	now := h.Now()
	lr := &store.LoginRequest{ID: "lr-" + secrets.NewSortableID(now), ClientID: clientID, BrowserHash: h.browserHash(browser),
		CreatedAt: now, ExpiresAt: now.Add(loginTTL)}
	if err := h.saveNew(r.Context(), lr, p); err != nil {
		h.serverFault(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, stepURL(lr.ID), http.StatusSeeOther)
}

func (h *Handler) saveNew(ctx context.Context, lr *store.LoginRequest, p *pending) error {
	if err := encodeInto(lr, p); err != nil {
		return err
	}
	return h.Store.CreateLoginRequest(ctx, lr)
}

func stepURL(id string) string { return stepPath + "?id=" + url.QueryEscape(id) }

// start is /ui/login/: signing in to Signet's own pages (the account page), without a client.
func (h *Handler) start(w http.ResponseWriter, r *http.Request) {
	cur, err := h.current(r.Context(), r)
	if err != nil {
		h.serverFault(w, r, err)
		return
	}
	returnTo := localPath(r.URL.Query().Get("return_to"))
	if cur != nil && r.URL.Query().Get("prompt") != authorize.PromptLogin {
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
		return
	}
	h.begin(w, r, "", &pending{ReturnTo: returnTo, Fresh: cur != nil})
}

// localPath keeps a return_to that is a path on this server, and falls back to the account page:
// a sign-in must never end on another site it was not asked to by a registered client.
func localPath(v string) string {
	u, err := url.Parse(v)
	if v == "" || err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || len(v) < 1 || v[0] != '/' || len(v) > 1 && (v[1] == '/' || v[1] == '\\') {
		return AccountPath
	}
	return u.RequestURI()
}

// issue finishes a sign-in at the authorization endpoint: a one-time code bound to the client,
// redirect URI, PKCE challenge and session, sent to the client.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, client *store.Client, p *pending, u *store.User, s *store.BrowserSession) {
	ctx := r.Context()
	req := p.Request
	now := h.Now()
	raw := secrets.NewOpaqueToken(secrets.AuthCodePrefix)
	code := &store.AuthCode{
		Hash: h.Secrets.HashToken(raw), ID: "ac-" + secrets.NewSortableID(now), ClientID: client.ID, RedirectURI: req.To.RedirectURI,
		UserID: u.ID, SessionID: s.ID, Scope: grantedScope(req.Scope, client), Nonce: req.Nonce, CodeChallenge: req.CodeChallenge,
		AuthTime: s.AuthTime, AMR: s.AMR, ACR: acrOf(s), GrantID: "gr-" + secrets.NewSortableID(now), CreatedAt: now, ExpiresAt: now.Add(codeTTL),
	}
	// Recorded before the code exists: a client that can hold tokens of this session is always one
	// that back-channel logout will tell when the session ends.
	if err := h.Store.AddSessionClient(ctx, s.ID, client.ID, now); err != nil {
		h.serverFault(w, r, err)
		return
	}
	if err := h.Store.CreateAuthCode(ctx, code); err != nil {
		h.serverFault(w, r, err)
		return
	}
	event := audit.Event{Type: audit.TypeSignInSucceeded, Subject: u.ID, Client: client.ID, Details: requestDetails(r, map[string]any{
		"session": s.ID, "code": code.ID, "amr": s.AMR, "acr": code.ACR, "scope": code.Scope})}
	if err := h.Audit.Record(ctx, event); err != nil {
		h.serverFault(w, r, err)
		return
	}
	h.deliver(w, r, req.To, req.Params(raw, h.Issuer))
}

// grantedScope is the requested scope without offline_access for a client that may not refresh:
// it would promise a refresh token the token endpoint will not issue.
func grantedScope(scope []string, c *store.Client) []string {
	if slices.Contains(c.GrantTypes, oauth.GrantRefreshToken) {
		return scope
	}
	return slices.DeleteFunc(slices.Clone(scope), func(s string) bool { return s == oauth.ScopeOfflineAccess })
}
