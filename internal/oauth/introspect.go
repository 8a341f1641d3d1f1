package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// IntrospectionJWTType is the media type of RFC 9701 signed introspection responses.
const IntrospectionJWTType = "application/token-introspection+jwt"

// introspection is the RFC 7662 §2.2 response, plus act, sid and signet_exchange (SPEC §6).
type introspection struct {
	Active    bool             `json:"active"`
	Scope     string           `json:"scope,omitempty"`
	ClientID  string           `json:"client_id,omitempty"`
	Username  string           `json:"username,omitempty"`
	TokenType string           `json:"token_type,omitempty"`
	Exp       int64            `json:"exp,omitempty"`
	Iat       int64            `json:"iat,omitempty"`
	Nbf       int64            `json:"nbf,omitempty"`
	Sub       string           `json:"sub,omitempty"`
	Aud       []string         `json:"aud,omitempty"`
	Iss       string           `json:"iss,omitempty"`
	Jti       string           `json:"jti,omitempty"`
	Act       *tokens.Actor    `json:"act,omitempty"`
	Sid       string           `json:"sid,omitempty"`
	Exchange  *tokens.Exchange `json:"signet_exchange,omitempty"`
}

// Introspect serves POST /oauth/v2/introspect (RFC 7662, RFC 9701).
func (h *Handler) Introspect(w http.ResponseWriter, r *http.Request) {
	caller, a, err := h.introspect(w, r)
	if err != nil {
		h.logRefusal(r, "introspect", err)
		WriteError(w, err)
		return
	}
	if wantsJWT(r) {
		h.writeIntrospectionJWT(w, caller, describe(a))
		return
	}
	if a == nil {
		writeRaw(w, inactiveJSON)
		return
	}
	// The encoded answer is kept with the cached token: a hot token costs no JSON encoding.
	if b := a.Rendered.Load(); b != nil {
		writeRaw(w, *b)
		return
	}
	b, err := json.Marshal(describe(a))
	if err != nil {
		WriteError(w, ServerError(err))
		return
	}
	a.Rendered.Store(&b)
	writeRaw(w, b)
}

var inactiveJSON = []byte(`{"active":false}`)

// writeRaw writes an already encoded 200 JSON answer with RFC 6749's no-store headers.
func writeRaw(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
	noCache         = []string{"no-cache"}
)

// describe is the RFC 7662 answer for a token: active with its claims, or inactive (nil).
func describe(a *tokens.Access) *introspection {
	if a == nil {
		return &introspection{Active: false}
	}
	return &introspection{
		Active: true, Scope: strings.Join(a.Scope, " "), ClientID: a.ClientID, TokenType: "Bearer",
		Exp: a.ExpiresAt.Unix(), Iat: a.IssuedAt.Unix(), Nbf: a.NotBefore.Unix(), Sub: a.Subject, Aud: a.Audience,
		Iss: a.Issuer, Jti: a.ID, Act: a.Act, Sid: a.SessionID, Exchange: a.Exchange,
	}
}

// introspect authenticates the caller and returns the token when the caller may see it active,
// nil when the answer is {"active":false}.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) (*Caller, *tokens.Access, error) {
	f, err := ParseForm(w, r)
	if err != nil {
		return nil, nil, err
	}
	ctx := r.Context()
	caller, err := h.Auth.Authenticate(r, f, AuthOptions{AllowBearer: true})
	if err != nil {
		return nil, nil, err
	}
	if caller.Kind == store.KindServiceAccount {
		ok, err := h.permitted(ctx, caller, directory.PermIntrospect)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, InvalidClient("service account %q lacks the signet:introspect permission; grant it with `signet role grant introspector --serviceaccount %s`", caller.Name, caller.Name)
		}
	}
	raw := f.Get("token")
	if raw == "" {
		return nil, nil, InvalidRequest("token is missing: send the token to introspect in the token parameter")
	}
	a, inactive, err := h.Tokens.Resolve(ctx, raw)
	if err != nil {
		return nil, nil, ServerError(err)
	}
	if inactive != nil {
		h.logInactive(r, caller, inactive.Code, inactive.Detail, inactive.Access)
		return caller, nil, nil
	}
	if !a.HasAudience(caller.ID) {
		ok, err := h.permitted(ctx, caller, directory.PermIntrospectAny)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			h.logInactive(r, caller, "audience", "the caller is not in the token's audience "+strings.Join(a.Audience, " ")+" and lacks introspect:any", a)
			return caller, nil, nil
		}
	}
	return caller, a, nil
}

// logInactive tells the operator why a token was reported inactive; the caller never learns it.
func (h *Handler) logInactive(r *http.Request, caller *Caller, code, detail string, a *tokens.Access) {
	attrs := []any{"caller", caller.ID, "reason", code, "detail", detail, "remote", r.RemoteAddr}
	if a != nil {
		attrs = append(attrs, "jti", a.ID, "sub", a.Subject, "client_id", a.ClientID)
	}
	h.Log.Info("introspection: token inactive", attrs...)
}

func wantsJWT(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), IntrospectionJWTType)
}

// writeIntrospectionJWT answers per RFC 9701 §5: the response as the token_introspection claim of a
// JWT signed by the issuer and addressed to the caller.
func (h *Handler) writeIntrospectionJWT(w http.ResponseWriter, caller *Caller, resp *introspection) {
	claims := map[string]any{
		"iss": h.Issuer, "aud": caller.ID, "iat": h.Now().Unix(),
		"token_introspection": resp,
	}
	jws, err := h.Keys.Sign(h.DefaultAlg, "token-introspection+jwt", claims)
	if err != nil {
		WriteError(w, ServerError(err))
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", IntrospectionJWTType)
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(jws))
}

// Revoke serves POST /oauth/v2/revoke (RFC 7009).
func (h *Handler) Revoke(w http.ResponseWriter, r *http.Request) {
	if err := h.revoke(w, r); err != nil {
		h.logRefusal(r, "revoke", err)
		WriteError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseForm(w, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	caller, err := h.Auth.Authenticate(r, f, AuthOptions{})
	if err != nil {
		return err
	}
	raw := f.Get("token")
	if raw == "" {
		return InvalidRequest("token is missing: send the token to revoke in the token parameter")
	}
	switch hint := f.Get("token_type_hint"); hint {
	case "", "access_token", "refresh_token":
	default:
		return UnsupportedTokenType("token_type_hint %q is not supported; use access_token or refresh_token", hint)
	}
	if strings.HasPrefix(raw, secrets.RefreshTokenPrefix) {
		return h.revokeRefresh(ctx, caller, raw)
	}
	a, inactive, err := h.Tokens.Resolve(ctx, raw)
	if err == nil && inactive != nil && inactive.Code == "wrong_type" {
		// An ID token (issued to the caller): revoking it ends it and what is derived from it.
		a, inactive, err = h.Tokens.ResolveIDToken(ctx, raw, caller.ID)
	}
	if err != nil {
		return ServerError(err)
	}
	if inactive != nil {
		// RFC 7009 §2.2: an invalid, expired or already revoked token is answered with 200.
		return nil
	}
	if ok, err := h.mayRevoke(ctx, caller, a.ClientID); !ok || err != nil {
		return err
	}
	return h.revokeAudited(ctx, caller, a.Subject, store.Revocation{
		Kind: store.RevokeTokenID, Value: a.ID, At: h.Now(), ExpiresAt: tokens.KeepRevocationUntil(a.ExpiresAt),
		Reason: "revoked through " + RevokePath + " by " + caller.describe(),
	})
}

// revokeAudited applies a revocation and records it. Revoking only ever takes rights away, so a
// failure to record is logged rather than undoing it.
func (h *Handler) revokeAudited(ctx context.Context, caller *Caller, subject string, rev store.Revocation) error {
	if err := h.Tokens.Revoke(ctx, rev); err != nil {
		return ServerError(err)
	}
	if h.Audit != nil {
		event := audit.Event{Type: audit.TypeTokenRevoked, Actor: caller.ID, Subject: subject, Client: caller.ID,
			Details: map[string]any{"kind": rev.Kind, "value": rev.Value, "reason": rev.Reason}}
		if err := h.Audit.Record(ctx, event); err != nil {
			h.Log.Error("could not audit a revocation", "err", err, "kind", rev.Kind, "value", rev.Value)
		}
	}
	return nil
}

// revokeRefresh revokes a refresh token and, as RFC 7009 §2.1 recommends, every access token of
// its grant.
func (h *Handler) revokeRefresh(ctx context.Context, caller *Caller, raw string) error {
	t, _, inactive, err := h.Tokens.ResolveRefresh(ctx, raw)
	if err != nil {
		return ServerError(err)
	}
	if t == nil || (inactive != nil && inactive.Code != "reused") {
		return nil // unknown, expired or already revoked: 200 (RFC 7009 §2.2)
	}
	if ok, err := h.mayRevoke(ctx, caller, t.ClientID); !ok || err != nil {
		return err
	}
	rev := store.Revocation{At: h.Now(), ExpiresAt: tokens.KeepRevocationUntil(t.ExpiresAt),
		Reason: "refresh token " + t.ID + " revoked through " + RevokePath + " by " + caller.describe()}
	rev.Kind, rev.Value = tokens.Family(t)
	return h.revokeAudited(ctx, caller, t.Subject, rev)
}

// mayRevoke allows the client a token was issued to, or an admin. Anyone else is answered 200 and
// nothing is revoked (RFC 7009 §2.2: the answer must not tell an active token someone else holds
// from garbage); the operator's log says why.
func (h *Handler) mayRevoke(ctx context.Context, caller *Caller, owner string) (bool, error) {
	if owner == caller.ID {
		return true, nil
	}
	ok, err := h.permitted(ctx, caller, directory.PermAdmin)
	if err != nil || ok {
		return ok, err
	}
	h.Log.Info("revocation ignored: the token was issued to another client", "caller", caller.ID, "owner", owner)
	return false, nil
}
