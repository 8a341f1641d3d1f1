package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// Endpoint paths (ZITADEL-compatible).
const (
	TokenPath      = "/oauth/v2/token"
	IntrospectPath = "/oauth/v2/introspect"
	RevokePath     = "/oauth/v2/revoke"
	KeysPath       = "/oauth/v2/keys"
)

// AdminPath is where the admin API lives; issuer + AdminPath is its audience. A token reaches the
// admin API only when it was issued for that audience, asked for explicitly (audience or resource),
// to a subject holding signet:admin.
const AdminPath = "/admin/v1"

// AdminAudience is the admin API's audience at this issuer.
func AdminAudience(issuer string) string { return issuer + AdminPath }

// Grant types.
const (
	GrantClientCredentials = "client_credentials"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
)

// DefaultAccountGrants is a new service account's grant allow-list unless the operator chooses
// another: the grants service accounts are for. The upgrade that introduced the lists gave existing
// accounts the same (migration serviceaccount_grants).
func DefaultAccountGrants() []string { return []string{GrantClientCredentials, GrantJWTBearer} }

// Handler serves the token, introspection and revocation endpoints.
type Handler struct {
	Issuer string
	Auth   *Authenticator
	Tokens *tokens.Service
	Keys   *keys.Manager
	Dir    *directory.Directory
	Log    *slog.Logger
	Now    func() time.Time

	DefaultAccessTTL   time.Duration // when a client sets none
	MaxAccessTTL       time.Duration // cap for every access token
	DefaultAlg         string        // JWT alg when a client sets none; also signs introspection responses
	AccountTokenFormat string        // access token format for service accounts

	// Audit records issuance that must be durable before a token exists (exchange, refresh).
	Audit *audit.Log
	// Exchange enables the token-exchange grant (RFC 8693).
	Exchange *Exchange
	// SignIn enables the authorization code grant (users signing in).
	SignIn *SignIn

	// Observe, when set, is told each grant's outcome (metrics).
	Observe func(grant string, err error)
}

// grant handles one grant_type once the caller is authenticated (nil only for the JWT bearer grant
// without client authentication).
type grant func(r *http.Request, caller *Caller, f Form) (*TokenResponse, error)

// GrantTypes lists the grant types this handler serves, for discovery.
func (h *Handler) GrantTypes() []string {
	g := []string{GrantClientCredentials, GrantJWTBearer, GrantRefreshToken}
	if h.SignIn != nil {
		g = append([]string{GrantAuthorizationCode}, g...)
	}
	if h.Exchange != nil {
		g = append(g, GrantTokenExchange)
	}
	return g
}

func (h *Handler) grants() map[string]grant {
	g := map[string]grant{
		GrantClientCredentials: h.clientCredentials,
		GrantJWTBearer:         h.jwtBearer,
		GrantRefreshToken:      h.refreshToken,
	}
	if h.SignIn != nil {
		g[GrantAuthorizationCode] = h.authorizationCode
	}
	if h.Exchange != nil {
		g[GrantTokenExchange] = h.tokenExchange
	}
	return g
}

// TokenResponse is the token endpoint's success body (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	IDToken         string `json:"id_token,omitempty"`
}

// Token serves POST /oauth/v2/token: parse, authenticate, dispatch on grant_type, render.
func (h *Handler) Token(w http.ResponseWriter, r *http.Request) {
	resp, grantType, err := h.token(w, r)
	if h.Observe != nil {
		h.Observe(grantType, err)
	}
	if err != nil {
		h.logRefusal(r, "token", err)
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (h *Handler) token(w http.ResponseWriter, r *http.Request) (*TokenResponse, string, error) {
	f, err := ParseForm(w, r)
	if err != nil {
		return nil, "", err
	}
	gt := f.Get("grant_type")
	if gt == "" {
		return nil, "", InvalidRequest("grant_type is missing; supported: %s", strings.Join(h.GrantTypes(), ", "))
	}
	g, ok := h.grants()[gt]
	if !ok {
		return nil, "unsupported", UnsupportedGrantType("grant_type %q is not supported; supported: %s", gt, strings.Join(h.GrantTypes(), ", "))
	}
	caller, err := h.Auth.Authenticate(r, f, AuthOptions{AllowNone: true, Optional: gt == GrantJWTBearer})
	if err != nil {
		return nil, gt, err
	}
	if err := grantAllowed(caller, gt); err != nil {
		return nil, gt, err
	}
	resp, err := g(r, caller, f)
	return resp, gt, err
}

// grantAllowed enforces the grant allow-list that every client and service account has: the one
// place that refuses a grant and says how to allow it. A nil caller (the JWT bearer grant without
// client authentication) brings no list; that grant checks the assertion's owner.
func grantAllowed(c *Caller, gt string) error {
	switch {
	case c == nil:
		return nil
	case c.Client != nil:
		if slices.Contains(c.Client.GrantTypes, gt) {
			return nil
		}
		return UnauthorizedClient("client %q may not use grant_type %s; its allowed grants are: %s; allow it with `signet client update %s --add-grant %s`",
			c.ID, gt, listOrNone(c.Client.GrantTypes), c.ID, gt)
	case c.Account != nil:
		if slices.Contains(c.Account.GrantTypes, gt) {
			return nil
		}
		return UnauthorizedClient("service account %q may not use grant_type %s; its allowed grants are: %s; allow it with `signet serviceaccount update %s --add-grant %s`",
			c.Name, gt, listOrNone(c.Account.GrantTypes), c.ID, gt)
	}
	return ServerError(fmt.Errorf("caller %q is neither a client nor a service account", c.ID))
}

func listOrNone(v []string) string {
	if len(v) == 0 {
		return "(none)"
	}
	return strings.Join(v, ", ")
}

// clientCredentials issues a token about the caller itself (RFC 6749 §4.4).
func (h *Handler) clientCredentials(r *http.Request, caller *Caller, f Form) (*TokenResponse, error) {
	if caller.Method == MethodNone {
		return nil, UnauthorizedClient("public client %q cannot use client_credentials; it has no credentials to prove", caller.ID)
	}
	return h.issueForCaller(r.Context(), caller, caller.ID, f)
}

// jwtBearer exchanges a service account's signed assertion for a token (RFC 7523 §2.1).
func (h *Handler) jwtBearer(r *http.Request, caller *Caller, f Form) (*TokenResponse, error) {
	ctx := r.Context()
	assertion := f.Get("assertion")
	if assertion == "" {
		return nil, InvalidRequest("assertion is missing: send a JWT signed with the service account's key file")
	}
	_, owner, err := h.Auth.VerifyAssertion(ctx, assertion, grantAssertion, []string{h.Issuer, h.Issuer + TokenPath})
	if err != nil {
		return nil, err
	}
	if owner.Account == nil {
		return nil, UnauthorizedClient("key of client %q authenticates the client itself (client_assertion); the JWT bearer grant needs a service account key file", owner.ID)
	}
	// The token is about the assertion's owner, so its list decides, whoever authenticated.
	if err := grantAllowed(owner, GrantJWTBearer); err != nil {
		return nil, err
	}
	clientID := owner.ID
	if caller != nil {
		clientID = caller.ID
	}
	return h.issueForCaller(ctx, owner, clientID, f)
}

// zitadelAudienceScope is ZITADEL's way of asking for a project audience in scope.
var zitadelAudienceScope = regexp.MustCompile(`^urn:zitadel:iam:org:project:id:([^:]+):aud$`)

// issueForCaller issues an access token whose subject is the authenticated client or service
// account, after checking the requested scope and audience.
func (h *Handler) issueForCaller(ctx context.Context, subject *Caller, clientID string, f Form) (*TokenResponse, error) {
	scope := listParam(f.Get("scope"))
	requested, err := f.Targets()
	if err != nil {
		return nil, err
	}
	for _, s := range scope {
		if m := zitadelAudienceScope.FindStringSubmatch(s); m != nil {
			requested = append(requested, m[1])
		}
	}
	resp, _, err := h.IssueAccessToken(ctx, Issue{
		SubjectKind: subject.Kind, Subject: subject.ID, ClientID: clientID, Client: subject.Client,
		Scope: scope, Audience: requested,
	})
	return resp, err
}

// Issue describes an access token to mint.
type Issue struct {
	SubjectKind store.PrincipalKind
	Subject     string
	ClientID    string        // the client the token is issued to
	Client      *store.Client // its settings (format, algorithm, lifetime, audiences); nil for a service account acting alone
	Scope       []string
	Audience    []string      // requested audiences besides the default
	TTL         time.Duration // requested lifetime; 0: the client's or the server's default
}

// IssueAccessToken checks scope and audience against the client's settings and mints the token.
// The token endpoint and `signet token issue` both use it, so both follow the same rules.
func (h *Handler) IssueAccessToken(ctx context.Context, in Issue) (*TokenResponse, *tokens.Access, error) {
	at := h.Now() // before the checks below; the token's ID keeps it (tokens.NewID)
	audience, err := h.allowedAudience(ctx, in, in.Audience)
	if err != nil {
		return nil, nil, err
	}
	if c := in.Client; c != nil && len(c.Scopes) > 0 {
		for _, s := range in.Scope {
			if !slices.Contains(c.Scopes, s) {
				return nil, nil, InvalidScope("scope %q is not allowed for client %q; allowed scopes: %s", s, c.ID, strings.Join(c.Scopes, " "))
			}
		}
	}
	format, alg, ttl := h.AccountTokenFormat, h.DefaultAlg, h.accessTTL(in.Client)
	if c := in.Client; c != nil {
		format = c.AccessTokenFormat
		if c.AccessTokenAlg != "" {
			alg = c.AccessTokenAlg
		}
	}
	if in.TTL > 0 {
		ttl = min(ttl, in.TTL)
	}
	now := at.Truncate(time.Second)
	a := &tokens.Access{
		ID: tokens.NewID(at), Subject: in.Subject, SubjectKind: in.SubjectKind, ClientID: in.ClientID,
		Audience: audience, Scope: in.Scope, IssuedAt: now, ExpiresAt: now.Add(ttl),
	}
	raw, err := h.Tokens.Issue(ctx, a, format, alg)
	if err != nil {
		return nil, nil, ServerError(err)
	}
	return &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second), Scope: strings.Join(in.Scope, " ")}, a, nil
}

// accessTTL is an access token's lifetime for client c (nil: a service account acting alone): the
// client's setting or the server's default, never above the server's cap.
func (h *Handler) accessTTL(c *store.Client) time.Duration {
	ttl := h.DefaultAccessTTL
	if c != nil && c.AccessTokenTTL > 0 {
		ttl = c.AccessTokenTTL
	}
	return min(ttl, h.MaxAccessTTL)
}

// allowedAudience checks requested audiences (audience, resource, ZITADEL audience scopes). The
// token's audience always contains its client (self) so it can introspect and revoke what it was
// given. A client may ask for its configured audiences; a service account acting alone, for any
// registered client. The admin API's audience is for subjects holding signet:admin only, whatever
// the client's list says.
func (h *Handler) allowedAudience(ctx context.Context, in Issue, requested []string) ([]string, error) {
	client, self := in.Client, in.ClientID
	aud := []string{self}
	for _, r := range requested {
		if r == "" || slices.Contains(aud, r) {
			continue
		}
		switch {
		case r == AdminAudience(h.Issuer):
			ok, err := h.subjectPermitted(ctx, in.SubjectKind, in.Subject, directory.PermAdmin)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, InvalidTarget("audience %q is the admin API; only a user, service account or client holding the signet:admin permission may get a token for it", r)
			}
		case client != nil:
			if !slices.Contains(client.Audiences, r) {
				return nil, InvalidTarget("audience %q is not allowed for client %q; allowed: %s (add it with `signet client update %s --add-audience %s`)", r, client.ID, listOrNone(client.Audiences), client.ID, r)
			}
		default:
			if _, err := h.Dir.Client(ctx, r); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return nil, InvalidTarget("audience %q is not a client registered at this issuer", r)
				}
				return nil, ServerError(err)
			}
		}
		aud = append(aud, r)
	}
	return aud, nil
}

// subjectPermitted reports whether a token's subject holds perm through its roles now.
func (h *Handler) subjectPermitted(ctx context.Context, kind store.PrincipalKind, id, perm string) (bool, error) {
	ok, err := SubjectPermitted(ctx, h.Dir, kind, id, perm)
	if errors.Is(err, exchange.ErrNoSuchParty) {
		return false, nil
	}
	if err != nil {
		return false, ServerError(err)
	}
	return ok, nil
}

// SubjectPermitted reports whether the principal of this kind and ID holds perm through its roles
// now and is in good standing (not locked or disabled); exchange.ErrNoSuchParty when it is gone.
// The token endpoint (who may get the admin API's audience) and the admin API (who may call it)
// both ask it.
func SubjectPermitted(ctx context.Context, dir *directory.Directory, kind store.PrincipalKind, id, perm string) (bool, error) {
	p, err := exchange.PartyByKind(ctx, dir, kind, id)
	if err != nil {
		return false, err
	}
	ok, err := dir.HasPermission(ctx, p.Roles, perm)
	return ok && !p.Locked, err
}

// logRefusal writes the operator's log line for a refused request.
func (h *Handler) logRefusal(r *http.Request, endpoint string, err error) {
	oe := AsError(err)
	level := slog.LevelInfo
	if oe.Status >= 500 {
		level = slog.LevelError
	}
	attrs := []any{"endpoint", endpoint, "error", oe.Code, "description", oe.Description, "remote", r.RemoteAddr}
	if oe.Cause != nil {
		attrs = append(attrs, "cause", oe.Cause.Error())
	}
	h.Log.Log(r.Context(), level, "request refused", attrs...)
}

// permitted reports whether the caller's roles grant perm.
func (h *Handler) permitted(ctx context.Context, c *Caller, perm string) (bool, error) {
	ok, err := h.Dir.HasPermission(ctx, c.Roles, perm)
	if err != nil {
		return false, ServerError(fmt.Errorf("roles: %w", err))
	}
	return ok, nil
}
