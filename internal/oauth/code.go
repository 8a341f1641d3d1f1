package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// GrantAuthorizationCode is RFC 6749 §4.1.3: the code the authorization endpoint sent to the
// client's redirect URI, for tokens. A client must be allowed this grant to sign users in at all.
const GrantAuthorizationCode = "authorization_code"

// Scopes with a meaning at the token endpoint.
const (
	ScopeOpenID        = "openid"
	ScopeOfflineAccess = "offline_access" // a refresh token, for a client allowed the refresh grant
)

// SignIn enables the authorization code grant: the codes the sign-in pages issued, and how long
// what they yield lives.
type SignIn struct {
	Store store.SignInStore
	// IDTokenTTL is an ID token's lifetime; DefaultRefreshTTL a user's refresh token's, for clients
	// that set none.
	IDTokenTTL        time.Duration
	DefaultRefreshTTL time.Duration
}

// codeVerifierOK reports RFC 7636 §4.1's code_verifier syntax: 43 to 128 unreserved characters.
func codeVerifierOK(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// S256 is RFC 7636's code challenge of a verifier: BASE64URL(SHA256(verifier)).
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizationCode redeems a code (RFC 6749 §4.1.3, RFC 7636 §4.6, OIDC Core §3.1.3). The code is
// spent before anything else is checked, so it can never be tried twice; a code presented a second
// time revokes every token the first redemption produced (RFC 6749 §4.1.2).
func (h *Handler) authorizationCode(r *http.Request, caller *Caller, f Form) (*TokenResponse, error) {
	ctx := r.Context()
	raw := f.Get("code")
	if raw == "" {
		return nil, InvalidRequest("code is missing: send the code the authorization endpoint added to the redirect URI")
	}
	at := h.Now()
	c, err := h.SignIn.Store.UseAuthCode(ctx, h.Auth.Secrets.HashToken(raw), at)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, InvalidGrant("the code was not issued by %s, or it expired long ago; start the sign-in again", h.Issuer)
	case errors.Is(err, store.ErrConflict) && c != nil:
		return nil, h.refuseCodeReplay(ctx, r, caller, c, at)
	case err != nil:
		return nil, ServerError(err)
	}
	switch {
	case c.ClientID != caller.ID:
		return nil, InvalidGrant("the code was issued to another client; only the client that started the sign-in may redeem it")
	case !at.Before(c.ExpiresAt):
		return nil, InvalidGrant("the code has expired (codes are good for %s); start the sign-in again", c.ExpiresAt.Sub(c.CreatedAt).Round(time.Second))
	}
	redirectURI := f.Get("redirect_uri")
	switch {
	case redirectURI == "":
		return nil, InvalidRequest("redirect_uri is missing: send the redirect_uri of the authorization request (OIDC Core section 3.1.3.1)")
	case redirectURI != c.RedirectURI:
		return nil, InvalidGrant("redirect_uri differs from the authorization request's; send exactly the same value")
	}
	if err := checkVerifier(c.CodeChallenge, f.Get("code_verifier")); err != nil {
		return nil, err
	}
	user, err := h.Dir.User(ctx, c.UserID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, InvalidGrant("the user who signed in no longer exists")
	case err != nil:
		return nil, ServerError(err)
	case user.Locked:
		return nil, InvalidGrant("the user's account was locked after signing in; nothing is issued for it")
	}
	session, err := h.SignIn.Store.GetBrowserSession(ctx, c.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, InvalidGrant("the sign-in session of this code no longer exists; sign in again")
	case err != nil:
		return nil, ServerError(err)
	case !session.Active(at):
		return nil, InvalidGrant("the user signed out (or the sign-in session ended) after this code was issued; sign in again")
	}
	return h.issueSignIn(ctx, r, caller, signInGrant{
		Grant: GrantAuthorizationCode, User: user, Scope: c.Scope, GrantID: c.GrantID, SessionID: c.SessionID,
		Origin: c.ID, At: at, ID: &tokens.SignIn{Nonce: c.Nonce, AMR: c.AMR, ACR: c.ACR, AuthTime: c.AuthTime},
		Refresh: true,
	})
}

// checkVerifier compares a code_verifier with the code's challenge (RFC 7636 §4.6).
func checkVerifier(challenge, verifier string) error {
	switch {
	case challenge == "" && verifier == "":
		return nil
	case challenge == "":
		return InvalidGrant("code_verifier was sent, but the authorization request had no code_challenge; send PKCE in both or neither")
	case verifier == "":
		return InvalidGrant("code_verifier is missing: the authorization request sent a code_challenge, so send the verifier it was made from")
	case !codeVerifierOK(verifier):
		return InvalidRequest("code_verifier must be 43 to 128 characters from A-Z a-z 0-9 - . _ ~ (RFC 7636 section 4.1)")
	case subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(challenge)) != 1:
		return InvalidGrant("code_verifier does not match the code_challenge of the authorization request (S256)")
	}
	return nil
}

// signInGrant is what a sign-in grant (a code, or a refresh of a user's sign-in) issues from.
type signInGrant struct {
	Grant     string
	User      *store.User
	Scope     []string
	GrantID   string
	SessionID string
	Origin    string // the code's ID, or the refresh token used
	At        time.Time
	ID        *tokens.SignIn
	Refresh   bool // issue a refresh token when offline_access was granted and the client may refresh
}

// issueSignIn records and issues an access token, an ID token (scope openid) and, for a code with
// offline_access, a refresh token, all carrying the grant and the browser session.
func (h *Handler) issueSignIn(ctx context.Context, r *http.Request, caller *Caller, g signInGrant) (*TokenResponse, error) {
	now := g.At.Truncate(time.Second)
	ttl := h.accessTTL(caller.Client)
	a := &tokens.Access{
		ID: tokens.NewID(g.At), Subject: g.User.ID, SubjectKind: store.KindUser, ClientID: caller.ID,
		Audience: []string{caller.ID}, Scope: g.Scope, IssuedAt: now, ExpiresAt: now.Add(ttl),
		GrantID: g.GrantID, SessionID: g.SessionID,
	}
	refresh := g.Refresh && slices.Contains(g.Scope, ScopeOfflineAccess) && slices.Contains(caller.Client.GrantTypes, GrantRefreshToken)
	event := audit.Event{Type: audit.TypeTokenIssued, Subject: g.User.ID, Client: caller.ID, Details: map[string]any{
		"grant": g.Grant, "jti": a.ID, "from": g.Origin, "session": g.SessionID, "scope": strings.Join(g.Scope, " "),
		"refresh_token": refresh, "expires_at": a.ExpiresAt.UTC().Format(time.RFC3339), "source_ip": r.RemoteAddr, "user_agent": r.UserAgent()}}
	if err := h.Audit.Record(ctx, event); err != nil {
		return nil, ServerError(err)
	}
	alg := h.algFor(caller)
	access, err := h.Tokens.Issue(ctx, a, h.formatFor(caller), alg)
	if err != nil {
		return nil, ServerError(err)
	}
	resp := &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(g.Scope, " ")}
	if refresh {
		if resp.RefreshToken, err = h.Tokens.IssueRefresh(ctx, a, now.Add(h.refreshTTL(caller.Client))); err != nil {
			return nil, ServerError(err)
		}
	}
	if slices.Contains(g.Scope, ScopeOpenID) {
		if resp.IDToken, err = h.idToken(a, alg, g, access); err != nil {
			return nil, ServerError(err)
		}
	}
	return resp, nil
}

// idToken signs the ID token that goes with access token a (OIDC Core §3.1.3.3).
func (h *Handler) idToken(a *tokens.Access, alg string, g signInGrant, access string) (string, error) {
	in := *g.ID
	in.AuthorizedParty = a.ClientID
	in.AccessTokenHash = tokens.HalfHash(alg, access)
	id := &tokens.Access{
		ID: tokens.NewID(g.At), Subject: a.Subject, SubjectKind: store.KindUser, ClientID: a.ClientID, Scope: a.Scope,
		IssuedAt: a.IssuedAt, ExpiresAt: a.IssuedAt.Add(h.SignIn.IDTokenTTL), GrantID: a.GrantID, SessionID: a.SessionID,
	}
	return h.Tokens.IssueIDToken(id, alg, &in)
}

// refreshTTL is a user's refresh token's lifetime at client c.
func (h *Handler) refreshTTL(c *store.Client) time.Duration {
	if c != nil && c.RefreshTokenTTL > 0 {
		return c.RefreshTokenTTL
	}
	return h.SignIn.DefaultRefreshTTL
}

// refuseCodeReplay revokes every token issued from a code presented a second time (it was stolen,
// or the client is broken), audits it, and refuses.
func (h *Handler) refuseCodeReplay(ctx context.Context, r *http.Request, caller *Caller, c *store.AuthCode, at time.Time) error {
	rev := store.Revocation{Kind: store.RevokeGrant, Value: c.GrantID, At: at,
		ExpiresAt: tokens.KeepRevocationUntil(at.Add(h.refreshTTL(caller.Client))), Reason: "authorization code " + c.ID + " was presented twice"}
	h.revokeReplayed(ctx, r, caller, rev, c.UserID, "authorization code replay", map[string]any{"code": c.ID})
	return InvalidGrant("the code was already used: codes are good once, so every token issued from it is now revoked; start the sign-in again")
}
