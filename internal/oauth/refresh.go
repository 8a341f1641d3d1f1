package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// GrantRefreshToken is RFC 6749 §6.
const GrantRefreshToken = "refresh_token"

// refreshToken serves the refresh grant. Refresh tokens rotate on every use; presenting a used one
// revokes its whole grant (OAuth 2.0 Security BCP §4.14). A refresh token born from a token exchange
// re-applies its rule as it stands now, and never outlives its exchange session. The rotation and
// its audit event commit together, before the new tokens exist.
func (h *Handler) refreshToken(r *http.Request, caller *Caller, f Form) (resp *TokenResponse, err error) {
	ctx := r.Context()
	raw := f.Get("refresh_token")
	if raw == "" {
		return nil, InvalidRequest("refresh_token is missing: send the refresh_token of the last token response")
	}
	old, prev, inactive, err := h.Tokens.ResolveRefresh(ctx, raw)
	if err != nil {
		return nil, ServerError(err)
	}
	if prev != nil && prev.Exchange != nil {
		// A refused attempt to continue a delegation or impersonation is a security event.
		defer func() {
			if err != nil {
				h.auditRefusedRefresh(ctx, r, caller, old, prev, err)
			}
		}()
	}
	if old != nil && old.ClientID != caller.ID {
		return nil, InvalidGrant("the refresh_token was issued to another client; only that client may use it")
	}
	if inactive != nil {
		switch inactive.Code {
		case "reused":
			return nil, h.refuseReuse(ctx, r, caller, old)
		case "expired":
			return nil, InvalidGrant("the refresh_token has expired; obtain new tokens the way the first ones were obtained")
		case "revoked":
			return nil, InvalidGrant("the refresh_token was revoked")
		case "wrong_type":
			return nil, InvalidGrant("the refresh_token is an access token; send the refresh_token value of the token response")
		default:
			return nil, InvalidGrant("the refresh_token is not a refresh token issued by %s", h.Issuer)
		}
	}
	scope := prev.Scope
	if requested := listParam(f.Get("scope")); len(requested) > 0 {
		for _, s := range requested {
			if !slices.Contains(prev.Scope, s) {
				return nil, InvalidScope("scope %q was not granted with this refresh_token; it can only keep or narrow: %s", s, listOrNone(prev.Scope))
			}
		}
		scope = requested
	}
	now := h.Now().Truncate(time.Second)
	ttl := h.accessTTL(caller.Client)
	until := old.ExpiresAt
	var session *store.ExchangeSession
	if prev.Exchange != nil {
		var ruleTTL time.Duration
		session, ruleTTL, err = h.refreshableSession(ctx, caller, prev)
		if err != nil {
			return nil, err
		}
		ttl, until = min(ttl, ruleTTL), minTime(until, session.ExpiresAt)
	} else if err := h.subjectStillValid(ctx, prev); err != nil {
		return nil, err
	}
	exp := minTime(now.Add(ttl), until)
	if !exp.After(now) {
		return nil, InvalidGrant("the refresh_token's session ends now; obtain new tokens the way the first ones were obtained")
	}
	a := &tokens.Access{
		ID: secrets.NewID(), Subject: prev.Subject, SubjectKind: prev.SubjectKind, ClientID: caller.ID,
		Audience: prev.Audience, Scope: scope, IssuedAt: now, ExpiresAt: exp,
		GrantID: prev.GrantID, SessionID: prev.SessionID, Act: prev.Act, Exchange: prev.Exchange,
	}
	details := refreshDetails{Grant: GrantRefreshToken, JTI: a.ID, Previous: old.ID, Scope: strings.Join(scope, " "), Audience: a.Audience,
		ExpiresAt: exp.UTC().Format(time.RFC3339), SourceIP: r.RemoteAddr, UserAgent: r.UserAgent()}
	event := audit.Event{Type: audit.TypeTokenIssued, Subject: a.Subject, Client: caller.ID}
	if session != nil {
		event.Actor, details.Session, details.Mode, details.Rule = session.Actor, session.ID, session.Kind, session.Rule
	}
	event.Details = details
	rec, err := h.Audit.Build(event)
	if err != nil {
		return nil, ServerError(err)
	}
	next, err := h.Tokens.RotateRefresh(ctx, old, a, rec)
	if errors.Is(err, store.ErrConflict) {
		// Used (or revoked) between the read and the rotation: a concurrent reuse.
		return nil, h.refuseReuse(ctx, r, caller, old)
	}
	if err != nil {
		return nil, ServerError(err)
	}
	access, err := h.Tokens.Issue(ctx, a, h.formatFor(caller), h.algFor(caller))
	if err != nil {
		return nil, ServerError(err)
	}
	return &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now) / time.Second),
		Scope: strings.Join(scope, " "), RefreshToken: next}, nil
}

// refreshDetails is the audit record of a refresh.
type refreshDetails struct {
	Grant     string   `json:"grant"`
	JTI       string   `json:"jti"`
	Previous  string   `json:"refresh_token_used"`
	Scope     string   `json:"scope"`
	Audience  []string `json:"audience"`
	ExpiresAt string   `json:"expires_at"`
	Session   string   `json:"session,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	Rule      string   `json:"rule,omitempty"`
	SourceIP  string   `json:"source_ip"`
	UserAgent string   `json:"user_agent"`
}

// refreshableSession checks that an exchange session may still be refreshed: not ended, not
// expired, impersonation not switched off, and its rule, as it stands now, still allows its actor,
// subject and client. It returns the session and the rule's token lifetime cap.
func (h *Handler) refreshableSession(ctx context.Context, caller *Caller, prev *tokens.Access) (*store.ExchangeSession, time.Duration, error) {
	if h.Exchange == nil {
		return nil, 0, InvalidGrant("token exchange is not enabled here, so this refresh_token cannot be used")
	}
	x, err := h.Exchange.Store.GetExchangeSession(ctx, prev.Exchange.Session)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, 0, InvalidGrant("the exchange session of this refresh_token no longer exists")
	case err != nil:
		return nil, 0, ServerError(err)
	case !x.EndedAt.IsZero():
		return nil, 0, InvalidGrant("%s session %s was ended at %s; a new exchange is needed", x.Kind, x.ID, x.EndedAt.UTC().Format(time.RFC3339))
	case !h.Now().Before(x.ExpiresAt):
		return nil, 0, InvalidGrant("%s session %s expired at %s; a new exchange is needed", x.Kind, x.ID, x.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if x.Kind == exchange.ModeImpersonation {
		if err := h.Exchange.impersonationAllowed(ctx); err != nil {
			return nil, 0, err
		}
	}
	rules, err := h.Exchange.Policy.Rules(ctx)
	if err != nil {
		return nil, 0, ServerError(err)
	}
	i := slices.IndexFunc(rules, func(r exchange.Rule) bool { return r.Name == x.Rule })
	if i < 0 {
		return nil, 0, InvalidGrant("rule %q, which allowed %s session %s, no longer exists; the session cannot be refreshed", x.Rule, x.Kind, x.ID)
	}
	subject, err := h.userParty(ctx, x.Subject)
	if err != nil {
		return nil, 0, err
	}
	actor, err := h.partyByID(ctx, x.Actor)
	if err != nil {
		return nil, 0, err
	}
	if actor.Locked {
		return nil, 0, InvalidGrant("the acting user of %s session %s is locked; the session cannot be refreshed", x.Kind, x.ID)
	}
	if why := rules[i].Recheck(x.Kind, actor, subject, caller.ID, caller.Method == MethodNone); why != "" {
		return nil, 0, InvalidGrant("rule %q no longer allows %s session %s: %s", x.Rule, x.Kind, x.ID, why)
	}
	return x, rules[i].TTL(), nil
}

// partyByID describes a session's actor, whichever kind of principal it is.
func (h *Handler) partyByID(ctx context.Context, id string) (exchange.Party, error) {
	if u, err := h.Dir.User(ctx, id); err == nil {
		return exchange.Party{Kind: string(store.KindUser), ID: u.ID, Name: u.Username, Roles: u.Roles, Locked: u.Locked}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return exchange.Party{}, ServerError(err)
	}
	if sa, err := h.Dir.ServiceAccount(ctx, id); err == nil {
		return exchange.Party{Kind: string(store.KindServiceAccount), ID: sa.ID, Name: sa.Name, Roles: sa.Roles, Locked: sa.Disabled}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return exchange.Party{}, ServerError(err)
	}
	if c, err := h.Dir.Client(ctx, id); err == nil {
		return exchange.Party{Kind: string(store.KindClient), ID: c.ID, Name: c.ID, Roles: c.Roles, Locked: c.Disabled}, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return exchange.Party{}, ServerError(err)
	}
	return exchange.Party{}, InvalidGrant("the acting party of this session no longer exists; the session cannot be refreshed")
}

// subjectStillValid refuses a refresh for a user who is gone or locked.
func (h *Handler) subjectStillValid(ctx context.Context, a *tokens.Access) error {
	if a.SubjectKind != store.KindUser {
		return nil
	}
	u, err := h.Dir.User(ctx, a.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return InvalidGrant("the user of this refresh_token no longer exists")
	case err != nil:
		return ServerError(err)
	case u.Locked:
		return InvalidGrant("user %s is locked; their refresh tokens cannot be used", u.ID)
	}
	return nil
}

// refuseReuse revokes every token of a reused refresh token's grant, audits it and returns the
// refusal. Failures to revoke or record are logged: the request is refused either way.
func (h *Handler) refuseReuse(ctx context.Context, r *http.Request, caller *Caller, old *store.Token) error {
	rev := store.Revocation{At: h.Now(), ExpiresAt: old.ExpiresAt.Add(time.Hour), Reason: "refresh token " + old.ID + " was used twice"}
	rev.Kind, rev.Value = tokens.Family(old)
	if err := h.Tokens.Revoke(ctx, rev); err != nil {
		h.Log.Error("could not revoke the grant of a reused refresh token", "err", err, "grant", old.GrantID)
	}
	event := audit.Event{Type: audit.TypeTokenRevoked, Subject: old.Subject, Client: caller.ID, Details: map[string]any{
		"reason": "refresh token reuse", "grant": old.GrantID, "refresh_token": old.ID, "source_ip": r.RemoteAddr, "user_agent": r.UserAgent()}}
	if err := h.Audit.Record(ctx, event); err != nil {
		h.Log.Error("could not audit a refresh token reuse", "err", err, "grant", old.GrantID)
	}
	return InvalidGrant("the refresh_token was already used: refresh tokens rotate on every use, so every token of its grant is now revoked; obtain new tokens the way the first ones were obtained")
}

// auditRefusedRefresh records a refused refresh of an exchange session as exchange.denied.
func (h *Handler) auditRefusedRefresh(ctx context.Context, r *http.Request, caller *Caller, old *store.Token, prev *tokens.Access, err error) {
	oe := AsError(err)
	actor := ""
	if prev.Act != nil {
		actor = prev.Act.Subject
	}
	event := audit.Event{Type: audit.TypeExchangeDenied, Actor: actor, Subject: prev.Subject, Client: caller.ID, Details: map[string]any{
		"grant": GrantRefreshToken, "error": oe.Code, "description": oe.Description, "mode": prev.Exchange.Kind, "session": prev.Exchange.Session,
		"refresh_token": old.ID, "source_ip": r.RemoteAddr, "user_agent": r.UserAgent()}}
	if aerr := h.Audit.Record(ctx, event); aerr != nil {
		h.Log.Error("could not audit a refused refresh", "err", aerr, "session", prev.Exchange.Session)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
