package oauth

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/tokens"
)

// RFC 8693 identifiers.
const (
	GrantTokenExchange    = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeUserID       = "urn:zitadel:params:oauth:token-type:user_id"
	TokenTypeUserIDSignet = "urn:signet:params:oauth:token-type:user_id"
)

// SubjectTokenTypes and RequestedTokenTypes are what discovery advertises.
var (
	SubjectTokenTypes   = []string{TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken, TokenTypeUserID, TokenTypeUserIDSignet}
	RequestedTokenTypes = []string{TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken, TokenTypeRefreshToken}
)

// Exchange is what the token-exchange grant needs besides the token service.
type Exchange struct {
	Policy   *exchange.Policy
	Sessions *exchange.Sessions // the kill switch, and ending sessions
	Store    interface {
		OpenExchangeSession(ctx context.Context, s *store.ExchangeSession, event *store.AuditEvent) error
		GetExchangeSession(ctx context.Context, id string) (*store.ExchangeSession, error)
		// GetBrowserSession finds the sign-in an actor token's sid names (require_actor_mfa).
		GetBrowserSession(ctx context.Context, id string) (*store.BrowserSession, error)
	}

	// Notify, when set, is called after a session whose rule asks to notify the subject opened.
	Notify func()
}

// impersonationAllowed refuses while the kill switch is on: new impersonations and refreshes of
// existing ones alike.
func (x *Exchange) impersonationAllowed(ctx context.Context) error {
	disabled, err := x.Sessions.ImpersonationDisabled(ctx)
	if err != nil {
		return ServerError(err)
	}
	if disabled {
		return refusalError(exchange.KillSwitchRefused())
	}
	return nil
}

// exchangeInput is the parsed request.
type exchangeInput struct {
	subjectToken, subjectType, actorToken, actorType, requested, reason string
	scope, audiences                                                    []string
	ttl                                                                 time.Duration
}

func parseExchange(f Form) (*exchangeInput, error) {
	audiences, err := f.Targets()
	if err != nil {
		return nil, err
	}
	in := &exchangeInput{
		subjectToken: f.Get("subject_token"), subjectType: f.Get("subject_token_type"),
		actorToken: f.Get("actor_token"), actorType: f.Get("actor_token_type"),
		requested: f.Get("requested_token_type"), reason: f.Get("reason"),
		scope: listParam(f.Get("scope")), audiences: audiences,
	}
	switch {
	case in.subjectToken == "":
		return nil, InvalidRequest("subject_token is missing: send the token (or user ID) the new token is about")
	case in.subjectType == "":
		return nil, InvalidRequest("subject_token_type is missing; supported: %s", strings.Join(SubjectTokenTypes, ", "))
	case !slices.Contains(SubjectTokenTypes, in.subjectType):
		return nil, InvalidRequest("subject_token_type %q is not supported; supported: %s", in.subjectType, strings.Join(SubjectTokenTypes, ", "))
	case (in.actorToken == "") != (in.actorType == ""):
		return nil, InvalidRequest("actor_token and actor_token_type must be sent together")
	case in.actorType != "" && in.actorType != TokenTypeAccessToken && in.actorType != TokenTypeJWT:
		return nil, InvalidRequest("actor_token_type %q is not supported; send the actor's access token as %s", in.actorType, TokenTypeAccessToken)
	case isUserID(in.subjectType) && in.actorToken == "":
		return nil, InvalidRequest("a user ID subject needs an actor_token: impersonation requires the token of the person acting")
	case len(in.reason) > 500:
		return nil, InvalidRequest("reason is longer than 500 characters")
	}
	if in.requested == "" {
		in.requested = TokenTypeAccessToken
	}
	if v := f.Get("expires_in"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, InvalidRequest("expires_in must be a positive number of seconds")
		}
		in.ttl = time.Duration(n) * time.Second
	}
	return in, nil
}

func isUserID(t string) bool { return t == TokenTypeUserID || t == TokenTypeUserIDSignet }

// tokenExchange serves the RFC 8693 grant: every refusal after client authentication is audited,
// and an allowed exchange is audited before the token exists.
func (h *Handler) tokenExchange(r *http.Request, caller *Caller, f Form) (*TokenResponse, error) {
	ctx, src := r.Context(), map[string]any{"source_ip": r.RemoteAddr, "user_agent": r.UserAgent()}
	if caller == nil || h.Exchange == nil {
		return nil, UnsupportedGrantType("grant_type %q is not supported; supported: %s", GrantTokenExchange, strings.Join(h.GrantTypes(), ", "))
	}
	in, err := parseExchange(f)
	var ev *exchangeEvent
	if err == nil {
		ev, err = h.decideExchange(ctx, caller, in)
	}
	if err != nil {
		h.auditDenied(ctx, caller, in, ev, err, src)
		return nil, err
	}
	return h.issueExchanged(ctx, caller, in, ev, src)
}

// exchangeEvent is a decided exchange on its way to issuance.
type exchangeEvent struct {
	req      exchange.Request
	decision *exchange.Decision
	subject  *tokens.Access // the subject token, when one was sent
	actor    *tokens.Access
	lineage  []tokens.Link // of the token to issue
}

func (h *Handler) decideExchange(ctx context.Context, caller *Caller, in *exchangeInput) (*exchangeEvent, error) {
	ev := &exchangeEvent{}
	req := exchange.Request{Client: caller.ID, PublicClient: caller.Method == MethodNone, Audiences: in.audiences,
		Scope: in.scope, TTL: in.ttl, Reason: in.reason, Now: h.Now()}
	var err error
	switch {
	case isUserID(in.subjectType):
		req.Subject, err = exchange.SubjectByUserID(ctx, h.Dir, in.subjectToken)
		if err != nil {
			return ev, ServerError(err)
		}
	case in.subjectType == TokenTypeIDToken:
		if in.actorToken == "" {
			return ev, InvalidRequest("an ID token cannot be exchanged on its own: it proves who signed in but grants nothing; send it with an actor_token (delegation or impersonation)")
		}
		ev.subject, req.Subject, err = h.idTokenParty(ctx, caller.ID, in.subjectToken)
	default:
		ev.subject, req.Subject, err = h.tokenParty(ctx, "subject_token", in.subjectToken, in.subjectType)
	}
	if err != nil {
		return ev, err
	}
	switch {
	case in.actorToken == "":
		req.Mode = exchange.ModeDownscope
	default:
		ev.actor, req.Actor, err = h.tokenParty(ctx, "actor_token", in.actorToken, in.actorType)
		if err != nil {
			return ev, err
		}
		if ev.actor.Act != nil {
			return ev, InvalidGrant("the actor_token was itself obtained by token exchange; send the acting party's own access token")
		}
		// Only now, with exchanged tokens refused: an impersonation token carries no sign-in of its
		// actor, and a down-scoped one of the actor's own token keeps the actor's sid.
		if req.Actor.SignIn, err = h.actorSignIn(ctx, ev.actor.SessionID, req.Now); err != nil {
			return ev, err
		}
		req.Mode = exchange.ModeFor(req.Actor.Kind, isUserID(in.subjectType))
	}
	ev.req = req
	if ev.decision, err = h.decide(ctx, req); err != nil {
		return ev, err
	}
	if ev.lineage, err = tokens.Derive(ev.subject, ev.actor); err != nil {
		return ev, InvalidGrant("the subject_token comes from a chain of more than %d exchanges; start again from the user's own token", tokens.MaxLineage)
	}
	if ev.subject != nil {
		// A token of an exchange session (or derived from one) yields nothing its sessions' rules no
		// longer allow, whether it is down-scoped or delegated from.
		var standings []exchange.SessionStanding
		for _, l := range ev.subject.Sessions() {
			_, st, err := h.sessionStanding(ctx, l.Exchange.Session, l.ActorVia, false, req.Now)
			if err != nil {
				return ev, err
			}
			standings = append(standings, *st)
		}
		if ref := exchange.Derived(ev.decision, in.scope, in.audiences, standings); ref != nil {
			return ev, refusalError(ref)
		}
	}
	return ev, requestedAllowed(caller, req.Mode, ev.decision, in.requested)
}

// decide applies the rules in force to a request, after the kill switch for impersonation. Before
// refusing for want of a rule it re-reads the stored rules, so a rule added a moment ago by another
// process applies at once. The token endpoint and CheckExchange both decide here.
func (h *Handler) decide(ctx context.Context, req exchange.Request) (*exchange.Decision, error) {
	if req.Mode == exchange.ModeImpersonation {
		if err := h.Exchange.impersonationAllowed(ctx); err != nil {
			return nil, err
		}
	}
	rules, err := h.Exchange.Policy.Rules(ctx)
	if err != nil {
		return nil, ServerError(err)
	}
	d, err := exchange.Decide(rules, req)
	var noRule *exchange.Refusal
	if errors.As(err, &noRule) && noRule.Code == "unauthorized_client" && noRule.Rule == "" {
		if rules, err = h.Exchange.Policy.Fresh(ctx); err != nil {
			return nil, ServerError(err)
		}
		d, err = exchange.Decide(rules, req)
	}
	if err != nil {
		return nil, refusalError(err)
	}
	return d, nil
}

// actorSignIn is the sign-in a token's sid names, as it stands at now, for rules with
// require_actor_mfa; nil when the token has no sid.
func (h *Handler) actorSignIn(ctx context.Context, sid string, now time.Time) (*exchange.SignIn, error) {
	if sid == "" {
		return nil, nil
	}
	bs, err := h.Exchange.Store.GetBrowserSession(ctx, sid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &exchange.SignIn{ID: sid}, nil
	case err != nil:
		return nil, ServerError(err)
	}
	return &exchange.SignIn{ID: sid, Found: true, UserID: bs.UserID, Active: bs.Active(now), MFAAt: bs.MFAAt}, nil
}

// requestedAllowed checks the requested_token_type against the decision and the caller's grants.
func requestedAllowed(caller *Caller, mode string, d *exchange.Decision, requested string) error {
	switch requested {
	case TokenTypeAccessToken, TokenTypeJWT, TokenTypeIDToken:
	case TokenTypeRefreshToken:
		switch {
		case mode == exchange.ModeDownscope:
			return InvalidRequest("requested_token_type refresh_token: down-scoping never yields a refresh token; refresh tokens come from delegation or impersonation rules with allow_refresh")
		case !d.Refresh:
			return InvalidRequest("requested_token_type refresh_token: rule %q does not allow refresh tokens (set allow_refresh: true on it)", d.Rule)
		}
		// A refresh token would be useless to a caller whose allow-list lacks the refresh grant.
		return grantAllowed(caller, GrantRefreshToken)
	default:
		return InvalidRequest("requested_token_type %q is not supported; supported: %s", requested, strings.Join(RequestedTokenTypes, ", "))
	}
	return nil
}

// ErrUnknownCaller is the cause of CheckExchange's refusal when no client or service account has
// the requesting ID (a mistake in the question rather than an answer to it).
var ErrUnknownCaller = errors.New("oauth: no client or service account has this ID")

// CheckExchange answers "would this exchange be allowed, and by which rule?" (`signet policy check`,
// POST /admin/v1/policies/check) by running what the token endpoint runs once the requesting client
// is authenticated: the client or service account callerID must exist and be enabled and be allowed
// the token-exchange grant; then the kill switch, the rules and the requested token type (empty:
// access token) decide. A refusal is the *Error the endpoint would answer; a refusal by the rules
// carries its *exchange.Refusal as Cause. Nothing is issued or audited. The actor and subject are
// assumed to hold fresh tokens issued to the requesting client, and a user actor to have just
// passed a second factor (exchange.Check): the Decision's ActorMFA says when the rule requires it.
func (h *Handler) CheckExchange(ctx context.Context, callerID string, c exchange.Check, requested string) (exchange.Request, *exchange.Decision, error) {
	caller, err := h.Auth.principal(ctx, callerID)
	if err != nil {
		return exchange.Request{}, nil, err
	}
	if caller == nil {
		return exchange.Request{}, nil, InvalidClient("unknown client %q: no client or service account has this ID", callerID).WithCause(ErrUnknownCaller)
	}
	if err := h.Auth.usable(caller); err != nil {
		return exchange.Request{}, nil, err
	}
	if caller.Client != nil {
		caller.Method = caller.Client.AuthMethod
	} else {
		caller.Method = MethodPrivateKeyJWT
	}
	c.Client, c.PublicClient = caller.ID, caller.Method == MethodNone
	req := c.Request(h.Now())
	if err := grantAllowed(caller, GrantTokenExchange); err != nil {
		return req, nil, err
	}
	if requested == "" {
		requested = TokenTypeAccessToken
	}
	d, err := h.decide(ctx, req)
	if err != nil {
		return req, nil, err
	}
	return req, d, requestedAllowed(caller, req.Mode, d, requested)
}

// refusalError is the one conversion of an exchange refusal into the OAuth error the caller sees;
// its Detail (for operators) stays in the Cause, which the audit log and server log record.
func refusalError(err error) error {
	var ref *exchange.Refusal
	if !errors.As(err, &ref) {
		return ServerError(err)
	}
	status := http.StatusBadRequest
	if ref.Code == CodeAccessDenied {
		status = http.StatusForbidden
	}
	return &Error{Code: ref.Code, Status: status, Description: ref.Description, Cause: ref}
}

// tokenParty verifies a subject or actor token issued here and describes its subject.
func (h *Handler) tokenParty(ctx context.Context, param, raw, typ string) (*tokens.Access, exchange.Party, error) {
	a, inactive, err := h.Tokens.Resolve(ctx, raw)
	if err != nil {
		return nil, exchange.Party{}, ServerError(err)
	}
	if inactive != nil {
		return nil, exchange.Party{}, h.inactiveInput(param, inactive)
	}
	if typ == TokenTypeJWT && a.Format != store.FormatJWT {
		return nil, exchange.Party{}, InvalidRequest("%s is an opaque token but its type says jwt; send it as %s", param, TokenTypeAccessToken)
	}
	return h.party(ctx, param, a)
}

// idTokenParty verifies an ID token sent as subject_token by the client it was issued to.
func (h *Handler) idTokenParty(ctx context.Context, client, raw string) (*tokens.Access, exchange.Party, error) {
	a, inactive, err := h.Tokens.ResolveIDToken(ctx, raw, client)
	if err != nil {
		return nil, exchange.Party{}, ServerError(err)
	}
	if inactive != nil {
		switch inactive.Code {
		case "audience":
			return nil, exchange.Party{}, InvalidGrant("the subject_token is an ID token for another client; only the client it was issued to may exchange it")
		case "wrong_type":
			return nil, exchange.Party{}, InvalidRequest("the subject_token is not an ID token (typ JWT) but its type says id_token; send access tokens as %s", TokenTypeAccessToken)
		case "malformed":
			return nil, exchange.Party{}, InvalidRequest("the subject_token is not a JWT but its type says id_token; send a user ID as %s", TokenTypeUserID)
		case "invalid_signature", "not_yet_valid":
			return nil, exchange.Party{}, InvalidGrant("the subject_token is not a valid ID token issued by %s", h.Issuer)
		}
		return nil, exchange.Party{}, h.inactiveInput("subject_token", inactive)
	}
	return h.party(ctx, "subject_token", a)
}

// inactiveInput is the refusal for a subject or actor token that is not active.
func (h *Handler) inactiveInput(param string, inactive *tokens.Inactive) error {
	switch inactive.Code {
	case "expired":
		return InvalidGrant("%s has expired", param)
	case "revoked":
		return InvalidGrant("%s was revoked", param)
	case "foreign":
		return InvalidGrant("%s was not issued by %s; only this issuer's tokens can be exchanged", param, h.Issuer)
	default:
		return InvalidGrant("%s is not an active access token issued by %s", param, h.Issuer)
	}
}

// party describes the principal of a verified input token.
func (h *Handler) party(ctx context.Context, param string, a *tokens.Access) (*tokens.Access, exchange.Party, error) {
	p, err := exchange.PartyOfToken(ctx, h.Dir, a)
	switch {
	case errors.Is(err, exchange.ErrNoSuchParty):
		return nil, p, InvalidGrant("the %s of the %s no longer exists", kindName(a.SubjectKind), param)
	case err != nil:
		return nil, p, ServerError(err)
	}
	return a, p, nil
}

// issueExchanged audits the allowed exchange, opens (or continues) its session and mints the token.
func (h *Handler) issueExchanged(ctx context.Context, caller *Caller, in *exchangeInput, ev *exchangeEvent, src map[string]any) (*TokenResponse, error) {
	req, d := ev.req, ev.decision
	now := req.Now.Truncate(time.Second)
	refresh := in.requested == TokenTypeRefreshToken
	a := &tokens.Access{
		ID: tokens.NewID(req.Now), Subject: req.Subject.ID, SubjectKind: store.PrincipalKind(req.Subject.Kind), ClientID: caller.ID,
		Audience: d.Audience, Scope: d.Scope, IssuedAt: now, ExpiresAt: d.ExpiresAt, Lineage: ev.lineage,
	}
	var newSession *store.ExchangeSession
	switch req.Mode {
	case exchange.ModeDownscope:
		// The narrowed token stays in its subject's session (same actor), if it has one.
		a.Act, a.Exchange, a.SessionID = ev.subject.Act, ev.subject.Exchange, ev.subject.SessionID
	default:
		a.Act = &tokens.Actor{Subject: req.Actor.ID, ClientID: req.Actor.TokenClient}
		if req.Mode == exchange.ModeDelegation && ev.subject != nil {
			a.Act.Act = ev.subject.Act
		}
		// Every delegation and impersonation opens a session owned by its actor alone; one made
		// from another session's token is that session's child through lineage.
		// The ID keeps the opening time to the ms: revocations of "sessions opened until" compare it.
		newSession = &store.ExchangeSession{ID: "xs-" + secrets.NewSortableID(req.Now), Kind: req.Mode, Actor: req.Actor.ID, Subject: req.Subject.ID,
			Client: caller.ID, Rule: d.Rule, Reason: req.Reason, CreatedAt: now, ExpiresAt: d.ExpiresAt}
		if refresh {
			newSession.ExpiresAt = d.RefreshUntil
		}
		a.Exchange = &tokens.Exchange{Kind: req.Mode, Session: newSession.ID}
	}
	details := exchange.Allowed{
		Mode: req.Mode, Rule: d.Rule, Audience: d.Audience, Scope: strings.Join(d.Scope, " "),
		ExpiresAt: d.ExpiresAt.UTC().Format(time.RFC3339), Reason: req.Reason, JTI: a.ID,
		RequestedTokenType: in.requested, SourceIP: src["source_ip"].(string), UserAgent: src["user_agent"].(string),
	}
	if a.Exchange != nil {
		details.Session = a.Exchange.Session
	}
	details.RuleSource = d.Source
	if si := req.Actor.SignIn; d.ActorMFA > 0 && si != nil {
		// What met require_actor_mfa, for whoever reviews the session later.
		details.ActorSignIn, details.ActorMFAAt = si.ID, si.MFAAt.UTC().Format(time.RFC3339)
	}
	if req.Subject.Session != "" && newSession != nil {
		details.ParentSession = req.Subject.Session
	}
	// The subject is told when a session opens; the audit event is the notification's outbox.
	details.NotifySubject = newSession != nil && d.Notify
	if refresh {
		// The refresh token and the access tokens it yields share a grant: reuse revokes them all.
		a.GrantID = "gr-" + secrets.NewID()
		details.RefreshUntil = d.RefreshUntil.UTC().Format(time.RFC3339)
	}
	// No audit event, no token: the event (with the session it opens) is durable before the token exists.
	event := audit.Event{Type: audit.TypeExchangeAllowed, Actor: req.Actor.ID, Subject: req.Subject.ID, Client: caller.ID, Details: details}
	if newSession != nil {
		rec, err := h.Audit.Build(event)
		if err == nil {
			err = h.Exchange.Store.OpenExchangeSession(ctx, newSession, rec)
		}
		if err != nil {
			return nil, ServerError(err)
		}
	} else if err := h.Audit.Record(ctx, event); err != nil {
		return nil, ServerError(err)
	}
	if details.NotifySubject && h.Exchange.Notify != nil {
		h.Exchange.Notify()
	}
	ttl := int64(d.ExpiresAt.Sub(now) / time.Second)
	resp := &TokenResponse{IssuedTokenType: in.requested, TokenType: "Bearer", ExpiresIn: ttl, Scope: strings.Join(d.Scope, " ")}
	var err error
	switch in.requested {
	case TokenTypeIDToken:
		resp.TokenType = "N_A"
		resp.AccessToken, err = h.Tokens.IssueIDToken(a, h.DefaultAlg, nil)
	case TokenTypeJWT:
		resp.AccessToken, err = h.Tokens.Issue(ctx, a, store.FormatJWT, h.algFor(caller))
	case TokenTypeRefreshToken:
		// The access token answers now; the refresh token continues the session (RFC 8693 §2.2.1:
		// issued_token_type names what access_token holds).
		resp.IssuedTokenType = TokenTypeAccessToken
		if resp.AccessToken, err = h.Tokens.Issue(ctx, a, h.formatFor(caller), h.algFor(caller)); err == nil {
			resp.RefreshToken, err = h.Tokens.IssueRefresh(ctx, a, d.RefreshUntil)
		}
	default:
		resp.AccessToken, err = h.Tokens.Issue(ctx, a, h.formatFor(caller), h.algFor(caller))
	}
	if err != nil {
		return nil, ServerError(err)
	}
	return resp, nil
}

func (h *Handler) formatFor(c *Caller) string {
	if c.Client != nil {
		return c.Client.AccessTokenFormat
	}
	return store.FormatJWT
}

func (h *Handler) algFor(c *Caller) string {
	if c.Client != nil && c.Client.AccessTokenAlg != "" {
		return c.Client.AccessTokenAlg
	}
	return h.DefaultAlg
}

// auditDenied records a refused exchange. A failure to record is logged; the request is refused
// either way.
func (h *Handler) auditDenied(ctx context.Context, caller *Caller, in *exchangeInput, ev *exchangeEvent, err error, src map[string]any) {
	oe := AsError(err)
	details := map[string]any{"error": oe.Code, "description": oe.Description}
	var ref *exchange.Refusal
	if errors.As(oe.Cause, &ref) && ref.Detail != "" && ref.Detail != ref.Description {
		details["operator_detail"] = ref.Detail // what the caller was not told
	}
	var actor, subject string
	if ev != nil {
		actor, subject = ev.req.Actor.ID, ev.req.Subject.ID
		if ev.req.Mode != "" {
			details["mode"] = ev.req.Mode
		}
	}
	if in != nil {
		details["reason"], details["subject_token_type"] = in.reason, in.subjectType
		if subject == "" && isUserID(in.subjectType) {
			subject = in.subjectToken
		}
	}
	maps.Copy(details, src)
	if aerr := h.Audit.Record(ctx, audit.Event{Type: audit.TypeExchangeDenied, Actor: actor, Subject: subject, Client: caller.ID, Details: details}); aerr != nil {
		h.Log.Error("could not audit a refused token exchange", "err", aerr, "client", caller.ID)
	}
}
