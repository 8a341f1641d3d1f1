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
	at := h.Now() // before the checks below; the new token's ID keeps it (tokens.NewID)
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
			if h.Now().Sub(old.UsedAt) < RefreshRaceWindow {
				return nil, raceLost()
			}
			return nil, h.refuseReuse(ctx, r, caller, old)
		case "expired":
			return nil, InvalidGrant("the refresh_token has expired; obtain new tokens the way the first ones were obtained")
		case "revoked":
			return nil, InvalidGrant("the refresh_token was revoked")
		case "principal":
			return nil, InvalidGrant("the refresh_token can no longer be used: a principal it was issued for or derived from is locked, disabled or deleted")
		case "wrong_type":
			return nil, InvalidGrant("the refresh_token is an access token; send the refresh_token value of the token response")
		default:
			return nil, InvalidGrant("the refresh_token is not a refresh token issued by %s", h.Issuer)
		}
	}
	now := at.Truncate(time.Second)
	requested := listParam(f.Get("scope"))
	scope, audience := prev.Scope, prev.Audience
	exp := minTime(now.Add(h.accessTTL(caller.Client)), old.ExpiresAt)
	var session *store.ExchangeSession
	if prev.Exchange != nil {
		var d *exchange.RefreshDecision
		if session, d, err = h.decideRefresh(ctx, caller, prev, requested, now); err != nil {
			return nil, err
		}
		scope, audience, exp = d.Scope, d.Audience, minTime(d.ExpiresAt, old.ExpiresAt)
	} else {
		for _, s := range requested {
			if !slices.Contains(prev.Scope, s) {
				return nil, InvalidScope("scope %q was not granted with this refresh_token; it can only keep or narrow: %s", s, listOrNone(prev.Scope))
			}
		}
		if len(requested) > 0 {
			scope = requested
		}
	}
	if !exp.After(now) {
		return nil, InvalidGrant("the refresh_token's session ends now; obtain new tokens the way the first ones were obtained")
	}
	signIn, err := h.signInOf(ctx, prev, at)
	if err != nil {
		return nil, err
	}
	a := &tokens.Access{
		ID: tokens.NewID(at), Subject: prev.Subject, SubjectKind: prev.SubjectKind, ClientID: caller.ID,
		Audience: audience, Scope: scope, IssuedAt: now, ExpiresAt: exp,
		GrantID: prev.GrantID, SessionID: prev.SessionID, Act: prev.Act, Exchange: prev.Exchange, Lineage: prev.Lineage,
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
		// Used (or revoked) between the read and the rotation: this request lost a race with another
		// use of the same token (a client retrying, or two replicas). The winner's tokens stay valid.
		return nil, raceLost()
	}
	if err != nil {
		return nil, ServerError(err)
	}
	access, err := h.Tokens.Issue(ctx, a, h.formatFor(caller), h.algFor(caller))
	if err != nil {
		return nil, ServerError(err)
	}
	resp = &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now) / time.Second),
		Scope: strings.Join(scope, " "), RefreshToken: next}
	if signIn != nil && slices.Contains(scope, ScopeOpenID) {
		// OIDC Core §12.2: a refreshed sign-in may come with a new ID token about the same sign-in.
		g := signInGrant{User: signIn.user, Scope: scope, At: at, ID: &tokens.SignIn{AuthTime: signIn.session.AuthTime, AMR: signIn.session.AMR}}
		if resp.IDToken, err = h.idToken(a, h.algFor(caller), g, access); err != nil {
			return nil, ServerError(err)
		}
	}
	return resp, nil
}

// userSignIn is the browser session and user a refresh token of a sign-in descends from.
type userSignIn struct {
	session *store.BrowserSession
	user    *store.User
}

// signInOf returns the sign-in a user's refresh token came from (nil for other refresh tokens),
// refusing when its browser session has ended: signing out ends what the session issued, whatever
// the revocation set still holds.
func (h *Handler) signInOf(ctx context.Context, prev *tokens.Access, at time.Time) (*userSignIn, error) {
	if h.SignIn == nil || prev.Exchange != nil || prev.SubjectKind != store.KindUser || prev.SessionID == "" {
		return nil, nil
	}
	s, err := h.SignIn.Store.GetBrowserSession(ctx, prev.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, InvalidGrant("the sign-in session of this refresh_token no longer exists; sign in again")
	case err != nil:
		return nil, ServerError(err)
	case !s.EndedAt.IsZero():
		return nil, InvalidGrant("the user signed out of the session this refresh_token was issued in; sign in again")
	}
	u, err := h.Dir.User(ctx, prev.Subject)
	if err != nil {
		return nil, InvalidGrant("the user of this refresh_token no longer exists")
	}
	return &userSignIn{session: s, user: u}, nil
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

// decideRefresh re-applies an exchange session's rule, and the rules of every session the refresh
// token descends from, as they stand now (exchange.RecheckSession, exchange.DecideRefresh), and
// returns what may be issued.
func (h *Handler) decideRefresh(ctx context.Context, caller *Caller, prev *tokens.Access, requested []string, now time.Time) (*store.ExchangeSession, *exchange.RefreshDecision, error) {
	if h.Exchange == nil {
		return nil, nil, InvalidGrant("token exchange is not enabled here, so this refresh_token cannot be used")
	}
	actorVia := ""
	if prev.Act != nil {
		actorVia = prev.Act.ClientID
	}
	x, own, err := h.sessionStanding(ctx, prev.Exchange.Session, actorVia, true, now)
	if err != nil {
		return nil, nil, err
	}
	req := exchange.RefreshRequest{Own: *own, Session: exchangeSession(x), Scope: prev.Scope, Audience: prev.Audience,
		Requested: requested, AccessTTL: h.accessTTL(caller.Client), Now: now}
	for _, l := range prev.Sessions() {
		if l.Exchange.Session == x.ID {
			continue
		}
		_, st, err := h.sessionStanding(ctx, l.Exchange.Session, l.ActorVia, false, now)
		if err != nil {
			return nil, nil, err
		}
		req.Ancestors = append(req.Ancestors, *st)
	}
	d, ref := exchange.DecideRefresh(req)
	if ref != nil {
		return nil, nil, refusalError(ref)
	}
	return x, d, nil
}

func exchangeSession(x *store.ExchangeSession) exchange.Session {
	return exchange.Session{ID: x.ID, Kind: x.Kind, Rule: x.Rule, CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt, EndedAt: x.EndedAt}
}

// sessionStanding gathers an exchange session, its rule, parties, requesting client and the kill
// switch as they stand now and asks exchange.RecheckSession what the session still allows.
// actorVia is the client its actor's token was issued to.
func (h *Handler) sessionStanding(ctx context.Context, id, actorVia string, refreshing bool, now time.Time) (*store.ExchangeSession, *exchange.SessionStanding, error) {
	x, err := h.Exchange.Store.GetExchangeSession(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, InvalidGrant("exchange session %s no longer exists; a new exchange is needed", id)
	case err != nil:
		return nil, nil, ServerError(err)
	}
	c := exchange.SessionCheck{Session: exchangeSession(x), Client: x.Client, Refreshing: refreshing, Now: now}
	if x.Kind == exchange.ModeImpersonation {
		if c.KillSwitch, err = h.Exchange.Sessions.ImpersonationDisabled(ctx); err != nil {
			return nil, nil, ServerError(err)
		}
	}
	if c.Rule, err = h.Exchange.Policy.Rule(ctx, x.Rule); err != nil {
		return nil, nil, ServerError(err)
	}
	if cl, err := h.Dir.Client(ctx, x.Client); err == nil {
		c.PublicClient = cl.AuthMethod == store.AuthNone
	}
	if c.Subject, err = exchange.SubjectByUserID(ctx, h.Dir, x.Subject); err != nil {
		return nil, nil, ServerError(err)
	}
	if c.Subject.Unknown {
		return nil, nil, InvalidGrant("the user of %s session %s no longer exists; nothing more can be obtained from it", x.Kind, x.ID)
	}
	c.Actor, err = exchange.PartyByID(ctx, h.Dir, x.Actor)
	switch {
	case errors.Is(err, exchange.ErrNoSuchParty):
		return nil, nil, InvalidGrant("the acting party of %s session %s no longer exists; nothing more can be obtained from it", x.Kind, x.ID)
	case err != nil:
		return nil, nil, ServerError(err)
	}
	c.Actor.TokenClient = actorVia
	st, ref := exchange.RecheckSession(c)
	if ref != nil {
		return nil, nil, refusalError(ref)
	}
	return x, st, nil
}

// RefreshRaceWindow is how soon after a refresh token's use a second use by the same client counts
// as a lost race (a retry, two replicas answering at once) rather than a replay: the loser is refused
// and audited, but the grant is not revoked, so the winner's new tokens stay valid. Later reuse
// revokes the whole grant.
const RefreshRaceWindow = 2 * time.Second

func raceLost() error {
	return InvalidGrant("the refresh_token was used by a concurrent request a moment ago; use the tokens that request received (refresh tokens rotate on every use)")
}

// refuseReuse revokes every token of a reused refresh token's grant, audits it and returns the
// refusal.
func (h *Handler) refuseReuse(ctx context.Context, r *http.Request, caller *Caller, old *store.Token) error {
	rev := store.Revocation{At: h.Now(), ExpiresAt: tokens.KeepRevocationUntil(old.ExpiresAt), Reason: "refresh token " + old.ID + " was used twice"}
	rev.Kind, rev.Value = tokens.Family(old)
	h.revokeReplayed(ctx, r, caller, rev, old.Subject, "refresh token reuse", map[string]any{"refresh_token": old.ID})
	return InvalidGrant("the refresh_token was already used: refresh tokens rotate on every use, so every token of its grant is now revoked; obtain new tokens the way the first ones were obtained")
}

// revokeReplayed revokes what a replayed one-time credential (a code, a used refresh token) issued
// and audits it as token.revoked. Failures to revoke or record are logged: the request is refused
// either way.
func (h *Handler) revokeReplayed(ctx context.Context, r *http.Request, caller *Caller, rev store.Revocation, subject, reason string, details map[string]any) {
	if err := h.Tokens.Revoke(ctx, rev); err != nil {
		h.Log.Error("could not revoke after a replay", "err", err, "reason", reason, "revoke", rev.Kind+":"+rev.Value)
	}
	details["reason"], details["source_ip"], details["user_agent"] = reason, r.RemoteAddr, r.UserAgent()
	if rev.Kind == store.RevokeGrant {
		details["grant"] = rev.Value
	}
	event := audit.Event{Type: audit.TypeTokenRevoked, Subject: subject, Client: caller.ID, Details: details}
	if err := h.Audit.Record(ctx, event); err != nil {
		h.Log.Error("could not audit a replay", "err", err, "reason", reason, "revoke", rev.Kind+":"+rev.Value)
	}
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
