package exchange

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Party is an actor or subject as the token endpoint established it from verified input.
type Party struct {
	Kind        string // user, serviceaccount or client
	ID          string
	Name        string
	Roles       []string
	Locked      bool     // a locked user, or a disabled client or service account
	Unknown     bool     // a user ID that names nobody; treated exactly like a non-matching subject
	HasToken    bool     // false for a subject given by user ID
	Scope       []string // its token's scope (an ID token's is the scope of the token it was minted from)
	Audience    []string // its token's audience
	ExpiresAt   time.Time
	TokenClient string // the client its token was issued to
	// Session is the exchange session its token belongs to, when the token was itself obtained by
	// delegation or impersonation.
	Session string
	// SignIn is the browser sign-in its token comes from (the token's sid) as it stands now; nil
	// when the token carries no sid (client credentials, service accounts, `signet token issue`).
	SignIn *SignIn
}

// SignIn is what a rule with require_actor_mfa needs to know of the sign-in an actor token comes
// from, looked up by the token endpoint.
type SignIn struct {
	ID     string    // the sid
	Found  bool      // false: no sign-in has this ID any more
	UserID string    // whose sign-in it is
	Active bool      // not ended and not expired
	MFAAt  time.Time // when a second factor was last passed in it; zero: never
}

// label names the party in refusals. A subject named by user ID is named by the ID as sent, never
// by a username looked up from it, so a refusal reads the same whether the ID exists or not.
func (p Party) label() string {
	name := p.Name
	if name == "" || !p.HasToken {
		name = p.ID
	}
	return p.Kind + " " + name
}

// Request is everything Decide needs, gathered and verified by the token endpoint.
type Request struct {
	Mode         string
	Actor        Party // zero for down-scoping
	Subject      Party
	Client       string // the requesting client
	PublicClient bool
	Audiences    []string // requested audience and resource values
	Scope        []string // requested scope; empty: as much as allowed
	TTL          time.Duration
	Reason       string
	Now          time.Time
}

// Decision is what may be issued.
type Decision struct {
	Rule      string // empty for down-scoping
	Source    string // where the rule lives: "store" or the policy file
	Scope     []string
	Audience  []string
	ExpiresAt time.Time
	Refresh   bool // the rule allows a refresh token
	// RefreshUntil is when a refresh token from this exchange, and its session, end (Refresh only).
	RefreshUntil time.Time
	Notify       bool // the rule asks to notify the subject
	// ActorMFA is the rule's require_actor_mfa window the actor's sign-in met (0: not required).
	ActorMFA time.Duration
}

// Refusal is a denied exchange, with the OAuth error code and a description that says what would
// be needed. Detail, when set, is the full reason for operators (audit log, token explain): it may
// say what the caller must not learn, such as a subject's roles.
type Refusal struct {
	Code        string
	Description string
	Rule        string // the rule that decided, when one did
	Detail      string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Description }

// refuse builds a Refusal; its format strings are part of the error catalog.
func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Description: fmt.Sprintf(format, args...)}
}

// Error codes used by refusals.
const (
	codeInvalidRequest     = "invalid_request"
	codeInvalidGrant       = "invalid_grant"
	codeInvalidScope       = "invalid_scope"
	codeInvalidTarget      = "invalid_target"
	codeUnauthorizedClient = "unauthorized_client"
)

// Decide applies the rules to a request. It is pure: the same input always gives the same answer.
// The order of its checks never depends on facts about the subject the caller may not learn: an
// unknown user ID, a user no rule names, a user holding a role the actor lacks and a locked user
// are refused alike until a rule has matched actor, client and subject.
func Decide(rules []Rule, req Request) (*Decision, error) {
	if req.Mode == ModeDownscope {
		return downscope(req)
	}
	if req.Actor.ID == req.Subject.ID && req.Actor.Kind == req.Subject.Kind {
		return nil, refuse(codeInvalidRequest, "the actor and the subject are the same %s; to narrow your own token, send it as subject_token without an actor_token", req.Actor.label())
	}
	if req.Subject.Kind != "user" {
		return nil, refuse(codeInvalidRequest, "the subject of a %s must be a user; the subject_token belongs to %s", req.Mode, req.Subject.label())
	}
	if req.Mode == ModeImpersonation && req.Subject.Session != "" {
		// One actor, one session: impersonating from someone else's exchanged token would put this
		// actor inside that actor's session (and drop them from act).
		return nil, refuse(codeInvalidRequest, "the subject_token was itself obtained by token exchange (session %s); impersonation starts from the user: send the user ID as subject_token (type %s) with your own actor_token", req.Subject.Session, "urn:zitadel:params:oauth:token-type:user_id")
	}
	var consulted, details []string
	var matched []Rule
	for _, r := range rules {
		if r.Mode != req.Mode {
			continue
		}
		if why, detail := r.mismatch(req); why != "" {
			consulted = append(consulted, fmt.Sprintf("%q: %s", r.Name, why))
			details = append(details, fmt.Sprintf("%q: %s", r.Name, detail))
			continue
		}
		matched = append(matched, r)
	}
	if len(matched) == 0 {
		verb := map[string]string{ModeImpersonation: "impersonate", ModeDelegation: "act for"}[req.Mode]
		if len(consulted) == 0 {
			return nil, refuse(codeUnauthorizedClient, "no %s rule exists, so %s may not %s %s; add one with `signet policy add --name <name> --mode %s --actor-role <role> --subject-role <role> --audience <api client ID>`",
				req.Mode, req.Actor.label(), verb, req.Subject.label(), req.Mode)
		}
		ref := refuse(codeUnauthorizedClient, "no %s rule lets %s %s %s through client %q; rules consulted: %s",
			req.Mode, req.Actor.label(), verb, req.Subject.label(), req.Client, strings.Join(consulted, "; "))
		ref.Detail = strings.Join(details, "; ")
		return nil, ref
	}
	var first *Refusal
	for _, r := range matched {
		d, ref := r.grant(req)
		if ref == nil {
			return d, nil
		}
		if first == nil {
			first = ref
		}
	}
	return nil, first
}

// mismatch says why a rule does not apply to the request's principals, or "" when it does: first
// what the caller may be told, then the full reason for operators. Every reason about the subject
// reads the same to the caller.
func (r *Rule) mismatch(req Request) (why, detail string) {
	a, s := req.Actor, req.Subject
	notSubject := s.label() + " is not among its subjects"
	switch {
	case r.Disabled:
		return "disabled", "disabled"
	case !r.Actors.matches(a):
		why = a.label() + " is not among its actors"
		return why, why
	case len(r.Clients) > 0 && !slices.Contains(r.Clients, req.Client):
		why = fmt.Sprintf("client %q is not among its clients", req.Client)
		return why, why
	case len(r.Clients) == 0 && req.PublicClient:
		why = fmt.Sprintf("public client %q is not listed in its clients", req.Client)
		return why, why
	case s.Unknown:
		return notSubject, "no user has ID " + s.ID
	case !r.Subjects.matches(s):
		return notSubject, notSubject
	}
	if req.Mode == ModeImpersonation {
		for _, role := range s.Roles {
			if !slices.Contains(a.Roles, role) && !slices.Contains(r.Subjects.Roles, role) {
				return notSubject, fmt.Sprintf("the subject holds role %s, which the actor lacks and the rule does not name", role)
			}
		}
	}
	return "", ""
}

func (sel Selector) matches(p Party) bool {
	named := func(list []string) bool {
		return slices.Contains(list, p.ID) || (p.Name != "" && slices.Contains(list, p.Name))
	}
	switch {
	case p.Kind == "user" && named(sel.Users):
		return true
	case p.Kind == "serviceaccount" && named(sel.ServiceAccounts):
		return true
	case p.Kind == "client" && named(sel.Clients):
		return true
	}
	return slices.ContainsFunc(p.Roles, func(role string) bool { return slices.Contains(sel.Roles, role) })
}

func (sub Subjects) matches(p Party) bool {
	if p.Unknown {
		return false
	}
	named := func(list []string) bool {
		return slices.Contains(list, p.ID) || (p.Name != "" && slices.Contains(list, p.Name))
	}
	hasRole := func(list []string) bool {
		return slices.ContainsFunc(p.Roles, func(role string) bool { return slices.Contains(list, role) })
	}
	if named(sub.ExcludeUsers) || hasRole(sub.ExcludeRoles) {
		return false
	}
	return slices.Contains(sub.Users, "*") || named(sub.Users) || hasRole(sub.Roles)
}

// grant computes what a matching rule allows, or why the request asks for more.
func (r *Rule) grant(req Request) (*Decision, *Refusal) {
	if ref := r.binding(req); ref != nil {
		ref.Rule = r.Name
		return nil, ref
	}
	if ref := r.actorMFA(req); ref != nil {
		ref.Rule = r.Name
		return nil, ref
	}
	if req.Subject.Locked {
		ref := refuse(codeInvalidGrant, "user %s is locked; a locked user's tokens cannot be obtained by exchange", req.Subject.ID)
		ref.Rule = r.Name
		return nil, ref
	}
	if r.RequireReason && strings.TrimSpace(req.Reason) == "" {
		ref := refuse(codeInvalidRequest, "rule %q requires a reason: send reason=<why, e.g. a ticket number>", r.Name)
		ref.Rule = r.Name
		return nil, ref
	}
	audience := req.Audiences
	for _, a := range audience {
		if !slices.Contains(r.Audiences, a) {
			ref := refuse(codeInvalidTarget, "audience %q is not allowed by rule %q; allowed: %s", a, r.Name, strings.Join(r.Audiences, ", "))
			ref.Rule = r.Name
			return nil, ref
		}
	}
	if len(audience) == 0 {
		audience = r.Audiences
	}
	// The scope is never broader than the rule's ceiling, the subject's token and, when
	// impersonating, the actor's token.
	bounds := [][]string{r.Scopes}
	if req.Subject.HasToken {
		bounds = append(bounds, req.Subject.Scope)
	}
	if req.Mode == ModeImpersonation {
		bounds = append(bounds, req.Actor.Scope)
	}
	allowed := intersect(bounds...)
	scope, ref := pickScope(req.Scope, allowed, fmt.Sprintf("rule %q, the subject's token and, when impersonating, the actor's token", r.Name))
	if ref != nil {
		ref.Rule = r.Name
		return nil, ref
	}
	exp, ref := expiry(req, r.TTL())
	if ref != nil {
		ref.Rule = r.Name
		return nil, ref
	}
	d := &Decision{Rule: r.Name, Source: r.Source, Scope: scope, Audience: audience, ExpiresAt: exp, Refresh: r.AllowRefresh, Notify: r.NotifySubject,
		ActorMFA: time.Duration(r.RequireActorMFA)}
	if r.AllowRefresh {
		d.RefreshUntil = req.Now.Add(r.RefreshLifetime()).Truncate(time.Second)
	}
	return d, nil
}

// binding checks that the actor token proves the actor came through the requesting client: it was
// issued to that client, or (confidential clients only) to a client the rule lists in
// actor_token_clients.
func (r *Rule) binding(req Request) *Refusal {
	tc := req.Actor.TokenClient
	switch {
	case tc == req.Client:
		return nil
	case req.PublicClient:
		return refuse(codeUnauthorizedClient, "the actor_token was issued to client %q; public client %q may only send actor tokens issued to itself (proof that the person signed in through it)", tc, req.Client)
	case slices.Contains(r.ActorTokenClients, tc):
		return nil
	}
	return refuse(codeUnauthorizedClient, "the actor_token was issued to client %q, not to %q; send an actor token issued to the requesting client, or list %q in actor_token_clients of rule %q", tc, req.Client, tc, r.Name)
}

// actorMFA checks require_actor_mfa: the actor token must come from a sign-in of the actor's that is
// still active and passed a second factor within the window, at the decision time. A token with no
// sid never does. It says only what the caller's own token lacks: nothing about the subject.
func (r *Rule) actorMFA(req Request) *Refusal {
	window := time.Duration(r.RequireActorMFA)
	if window <= 0 {
		return nil
	}
	a, si := req.Actor, req.Actor.SignIn
	switch {
	case si == nil:
		return refuse(codeInvalidGrant, "rule %q requires the actor to have passed a second factor within %s; the actor_token does not come from a sign-in (it has no sid): send the access token of the actor's own sign-in through the hosted pages", r.Name, window)
	case !si.Found || a.Kind != "user" || si.UserID != a.ID:
		return refuse(codeInvalidGrant, "rule %q requires the actor to have passed a second factor within %s; the actor_token's sign-in %s is not an existing sign-in of %s", r.Name, window, si.ID, a.label())
	case !si.Active:
		return refuse(codeInvalidGrant, "rule %q requires the actor to have passed a second factor within %s; the actor_token's sign-in %s has ended: sign in again with a second factor (acr_values=mfa) and send the new access token", r.Name, window, si.ID)
	case si.MFAAt.IsZero():
		return refuse(codeInvalidGrant, "rule %q requires the actor to have passed a second factor within %s; the actor_token's sign-in %s passed none: sign in again with a second factor (acr_values=mfa, prompt=login) and send the new access token", r.Name, window, si.ID)
	}
	if age := req.Now.Sub(si.MFAAt); age > window {
		return refuse(codeInvalidGrant, "rule %q requires the actor to have passed a second factor within %s; the actor_token's sign-in %s passed one %s ago: sign in again with a second factor (acr_values=mfa, prompt=login) and send the new access token", r.Name, window, si.ID, age.Truncate(time.Second))
	}
	return nil
}

// downscope narrows a token of the requesting client's own subject: no rule is needed, and
// nothing may grow.
func downscope(req Request) (*Decision, error) {
	s := req.Subject
	if s.TokenClient != req.Client && !(s.Kind == "client" && s.ID == req.Client) {
		return nil, refuse(codeUnauthorizedClient, "the subject_token was issued to client %q, not to %q; a client may narrow only its own tokens. To act for the token's user, send your own access token as actor_token (delegation) and add a delegation rule with `signet policy add --mode delegation`", s.TokenClient, req.Client)
	}
	for _, a := range req.Audiences {
		if !slices.Contains(s.Audience, a) {
			return nil, refuse(codeInvalidTarget, "audience %q is not in the subject_token's audience (%s); down-scoping can only narrow it", a, strings.Join(s.Audience, ", "))
		}
	}
	audience := req.Audiences
	if len(audience) == 0 {
		audience = s.Audience
	}
	scope, ref := pickScope(req.Scope, s.Scope, "the subject_token")
	if ref != nil {
		return nil, ref
	}
	exp, ref := expiry(req, MaxTTL)
	if ref != nil {
		return nil, ref
	}
	return &Decision{Scope: scope, Audience: audience, ExpiresAt: exp}, nil
}

// pickScope returns the requested scope when allowed covers it, or all of allowed when none was
// requested; asking for more is invalid_scope, never a silent widening.
func pickScope(requested, allowed []string, bound string) ([]string, *Refusal) {
	if len(requested) == 0 {
		return slices.Clone(allowed), nil
	}
	for _, s := range requested {
		if !slices.Contains(allowed, s) {
			have := strings.Join(allowed, " ")
			if have == "" {
				have = "(none)"
			}
			return nil, refuse(codeInvalidScope, "scope %q exceeds what %s allow: %s", s, bound, have)
		}
	}
	return slices.Clone(requested), nil
}

// expiry is the minimum of the requested lifetime, the cap and the input tokens' remaining life.
func expiry(req Request, ttl time.Duration) (time.Time, *Refusal) {
	if req.TTL > 0 {
		ttl = min(ttl, req.TTL)
	}
	exp := req.Now.Add(ttl)
	for _, p := range []Party{req.Subject, req.Actor} {
		if p.HasToken && p.ExpiresAt.Before(exp) {
			exp = p.ExpiresAt
		}
	}
	if !exp.After(req.Now) {
		return time.Time{}, refuse(codeInvalidGrant, "the subject or actor token expires now; nothing can be issued from it")
	}
	return exp.Truncate(time.Second), nil
}

// intersect returns the values present in every list, in the first list's order.
func intersect(lists ...[]string) []string {
	out := slices.Clone(lists[0])
	for _, l := range lists[1:] {
		out = slices.DeleteFunc(out, func(s string) bool { return !slices.Contains(l, s) })
	}
	return out
}

// SessionCheck is an exchange session with its rule and parties as they stand now: what
// RecheckSession needs to say whether anything more may be obtained from the session.
type SessionCheck struct {
	Rule         *Rule // the rule in force with the session's name; nil when it no longer exists
	Session      Session
	Actor        Party  // the session's actor now, with TokenClient: the client its actor token was issued to
	Subject      Party  // the session's subject now
	Client       string // the client that opened the session
	PublicClient bool
	KillSwitch   bool // impersonation is switched off
	Refreshing   bool // a refresh of this session (allow_refresh must still be on)
	Now          time.Time
}

// Session is what a recheck needs of an exchange session.
type Session struct {
	ID, Kind, Rule       string
	CreatedAt, ExpiresAt time.Time
	EndedAt              time.Time // zero: not ended
}

// SessionStanding is what a session's rule still allows: nothing derived from the session (a
// refresh, a down-scoped token, a delegation from one of its tokens) may exceed it.
type SessionStanding struct {
	Scopes    []string
	Audiences []string
	Ends      time.Time     // the session's end, under the rule's refresh_ttl as it stands now
	MaxTTL    time.Duration // the rule's max_ttl now
	Rule      string
}

// RecheckSession re-applies a session's rule, as it stands now: the session must be open, its rule
// must exist, be enabled, still match the actor, subject and client (the actor token's binding
// included), and the kill switch must be off for impersonation. It is pure.
func RecheckSession(c SessionCheck) (*SessionStanding, *Refusal) {
	x, r := c.Session, c.Rule
	switch {
	case !x.EndedAt.IsZero():
		return nil, refuse(codeInvalidGrant, "%s session %s was ended at %s; a new exchange is needed", x.Kind, x.ID, x.EndedAt.UTC().Format(time.RFC3339))
	case x.Kind == ModeImpersonation && c.KillSwitch:
		return nil, KillSwitchRefused()
	case r == nil:
		return nil, refuse(codeInvalidGrant, "rule %q, which allowed %s session %s, no longer exists; nothing more can be obtained from the session", x.Rule, x.Kind, x.ID)
	}
	ends := x.ExpiresAt
	if r.AllowRefresh {
		ends = minTime(ends, x.CreatedAt.Add(r.RefreshLifetime()))
	}
	if !c.Now.Before(ends) {
		return nil, refuse(codeInvalidGrant, "%s session %s expired at %s; a new exchange is needed", x.Kind, x.ID, ends.UTC().Format(time.RFC3339))
	}
	why := ""
	req := Request{Mode: x.Kind, Actor: c.Actor, Subject: c.Subject, Client: c.Client, PublicClient: c.PublicClient}
	switch {
	case r.Mode != x.Kind:
		why = fmt.Sprintf("it is now a %s rule", r.Mode)
	case c.Refreshing && !r.AllowRefresh:
		why = "it no longer allows refresh (allow_refresh is off)"
	case c.Actor.Locked:
		why = c.Actor.label() + " is locked or disabled"
	case c.Subject.Locked:
		why = fmt.Sprintf("user %s is locked", c.Subject.ID)
	default:
		if why, _ = r.mismatch(req); why == "" {
			if ref := r.binding(req); ref != nil {
				why = ref.Description
			}
		}
	}
	if why != "" {
		return nil, refuse(codeInvalidGrant, "rule %q no longer allows %s session %s: %s", x.Rule, x.Kind, x.ID, why)
	}
	return &SessionStanding{Scopes: r.Scopes, Audiences: r.Audiences, Ends: ends, MaxTTL: r.TTL(), Rule: r.Name}, nil
}

// RefreshRequest is what DecideRefresh needs: the session's own standing (RecheckSession with
// Refreshing), the standing of every session the refresh token descends from, and the refresh
// token's grant.
type RefreshRequest struct {
	Own       SessionStanding
	Ancestors []SessionStanding
	Session   Session
	Scope     []string // what the refresh token carries
	Audience  []string
	Requested []string      // scope asked for now; empty: as much as allowed
	AccessTTL time.Duration // the client's access-token lifetime
	Now       time.Time
}

// RefreshDecision is what a refresh may issue: never more than the refresh token carries, and never
// more than the session's rule (and every ancestor session's rule) allows now.
type RefreshDecision struct {
	Scope     []string
	Audience  []string
	ExpiresAt time.Time // the new access token's
}

// DecideRefresh narrows a refresh to what the rules in force allow: the scope and audience shrink
// to the session's rule and its ancestors' as they stand now; the access token lives no longer than
// the rule's max_ttl and the sessions. It is pure.
func DecideRefresh(req RefreshRequest) (*RefreshDecision, *Refusal) {
	x, own := req.Session, req.Own
	allowed, audience, ends := intersect(req.Scope, own.Scopes), intersect(req.Audience, own.Audiences), own.Ends
	for _, a := range req.Ancestors {
		allowed, audience, ends = intersect(allowed, a.Scopes), intersect(audience, a.Audiences), minTime(ends, a.Ends)
	}
	scope := allowed
	for _, s := range req.Requested {
		if !slices.Contains(allowed, s) {
			return nil, refuse(codeInvalidScope, "scope %q was not granted with this refresh_token or is no longer allowed by rule %q; it can only keep or narrow: %s", s, own.Rule, listOrNone(allowed))
		}
	}
	if len(req.Requested) > 0 {
		scope = slices.Clone(req.Requested)
	}
	if len(audience) == 0 {
		return nil, refuse(codeInvalidGrant, "rule %q no longer allows any audience of %s session %s (%s); a new exchange is needed", own.Rule, x.Kind, x.ID, strings.Join(req.Audience, ", "))
	}
	ttl := own.MaxTTL
	if req.AccessTTL > 0 {
		ttl = min(ttl, req.AccessTTL)
	}
	exp := minTime(req.Now.Add(ttl), ends).Truncate(time.Second)
	if !exp.After(req.Now) {
		return nil, refuse(codeInvalidGrant, "%s session %s ends now; a new exchange is needed", x.Kind, x.ID)
	}
	return &RefreshDecision{Scope: scope, Audience: audience, ExpiresAt: exp}, nil
}

// Derived narrows a decision about a token derived from exchange sessions' tokens (down-scoping one,
// or delegating from one) to what those sessions' rules allow now. Asking explicitly for more is
// refused like asking a rule for more.
func Derived(d *Decision, requestedScope, requestedAudience []string, sessions []SessionStanding) *Refusal {
	for _, st := range sessions {
		for _, s := range requestedScope {
			if !slices.Contains(st.Scopes, s) {
				return refuse(codeInvalidScope, "scope %q exceeds what %s allow: %s", s, fmt.Sprintf("rule %q (of the session the subject_token belongs to)", st.Rule), listOrNone(st.Scopes))
			}
		}
		for _, a := range requestedAudience {
			if !slices.Contains(st.Audiences, a) {
				return refuse(codeInvalidTarget, "audience %q is not allowed by rule %q; allowed: %s", a, st.Rule, strings.Join(st.Audiences, ", "))
			}
		}
		d.Scope, d.Audience = intersect(d.Scope, st.Scopes), intersect(d.Audience, st.Audiences)
		d.ExpiresAt = minTime(d.ExpiresAt, st.Ends)
		d.RefreshUntil = minTime(d.RefreshUntil, st.Ends)
		if len(d.Audience) == 0 {
			return refuse(codeInvalidGrant, "rule %q no longer allows any audience of the session the subject_token belongs to; a new exchange is needed", st.Rule)
		}
	}
	return nil
}

// KillSwitchRefused is the refusal of every impersonation and refresh of one while the kill switch
// is on.
func KillSwitchRefused() *Refusal {
	return refuse("access_denied", "impersonation is disabled by the operator's kill switch (`signet impersonation enable` turns it back on)")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func listOrNone(v []string) string {
	if len(v) == 0 {
		return "(none)"
	}
	return strings.Join(v, " ")
}
