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
	Locked      bool
	Unknown     bool     // a user ID that names nobody; treated exactly like a non-matching subject
	HasToken    bool     // false for a subject given by user ID
	IDToken     bool     // the token is an ID token: it bounds the lifetime, not the scope (it carries none)
	Scope       []string // its token's scope
	Audience    []string // its token's audience
	ExpiresAt   time.Time
	TokenClient string // the client its token was issued to
}

func (p Party) label() string {
	name := p.Name
	if name == "" {
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
	Scope     []string
	Audience  []string
	ExpiresAt time.Time
	Refresh   bool // the rule allows a refresh token
	// RefreshUntil is when a refresh token from this exchange, and its session, end (Refresh only).
	RefreshUntil time.Time
	Notify       bool // the rule asks to notify the subject
}

// Refusal is a denied exchange, with the OAuth error code and a description that says what would
// be needed.
type Refusal struct {
	Code        string
	Description string
	Rule        string // the rule that decided, when one did
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
	if req.Subject.Locked {
		return nil, refuse(codeInvalidGrant, "user %s is locked; a locked user's tokens cannot be obtained by exchange", req.Subject.ID)
	}
	var consulted []string
	var matched []Rule
	for _, r := range rules {
		if r.Mode != req.Mode {
			continue
		}
		if why := r.mismatch(req); why != "" {
			consulted = append(consulted, fmt.Sprintf("%q: %s", r.Name, why))
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
		return nil, refuse(codeUnauthorizedClient, "no %s rule lets %s %s %s through client %q; rules consulted: %s",
			req.Mode, req.Actor.label(), verb, req.Subject.label(), req.Client, strings.Join(consulted, "; "))
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

// mismatch says why a rule does not apply to the request's principals, or "" when it does.
func (r *Rule) mismatch(req Request) string {
	a, s := req.Actor, req.Subject
	switch {
	case r.Disabled:
		return "disabled"
	case !r.Actors.matches(a):
		return a.label() + " is not among its actors"
	case len(r.Clients) > 0 && !slices.Contains(r.Clients, req.Client):
		return fmt.Sprintf("client %q is not among its clients", req.Client)
	case len(r.Clients) == 0 && req.PublicClient:
		return fmt.Sprintf("public client %q is not listed in its clients", req.Client)
	case !r.Subjects.matches(s):
		return s.label() + " is not among its subjects"
	}
	if req.Mode == ModeImpersonation {
		for _, role := range s.Roles {
			if !slices.Contains(a.Roles, role) && !slices.Contains(r.Subjects.Roles, role) {
				return fmt.Sprintf("the subject holds role %s, which the actor lacks and the rule does not name", role)
			}
		}
	}
	return ""
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
	if req.PublicClient && req.Actor.TokenClient != req.Client {
		ref := refuse(codeUnauthorizedClient, "the actor_token was issued to client %q; public client %q may only send actor tokens issued to itself (proof that the person signed in through it)", req.Actor.TokenClient, req.Client)
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
	if req.Subject.HasToken && !req.Subject.IDToken {
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
	d := &Decision{Rule: r.Name, Scope: scope, Audience: audience, ExpiresAt: exp, Refresh: r.AllowRefresh, Notify: r.NotifySubject}
	if r.AllowRefresh {
		d.RefreshUntil = req.Now.Add(r.RefreshLifetime()).Truncate(time.Second)
	}
	return d, nil
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

// Recheck says why a rule no longer allows a session's parties and client, or "" when it still
// does: a refresh re-applies the rule as it stands now, with the parties' current roles.
func (r *Rule) Recheck(mode string, actor, subject Party, client string, public bool) string {
	switch {
	case r.Mode != mode:
		return fmt.Sprintf("it is now a %s rule", r.Mode)
	case !r.AllowRefresh:
		return "it no longer allows refresh (allow_refresh is off)"
	case subject.Locked:
		return fmt.Sprintf("user %s is locked", subject.ID)
	}
	return r.mismatch(Request{Mode: mode, Actor: actor, Subject: subject, Client: client, PublicClient: public})
}
