package exchange

import "time"

// Check is a "would this exchange be allowed?" question asked without tokens (`signet policy
// check`, the admin API): the actor and subject are assumed to hold fresh tokens (an hour left)
// issued to the client, with the given scopes, and a user actor to have signed in with a second
// factor just now (a rule's require_actor_mfa is met; the answer's Decision.ActorMFA says that the
// rule asks for it). A service account or client actor has no sign-in. oauth.Handler.CheckExchange fills in Client and
// PublicClient from the requesting client and answers it with the token endpoint's own steps.
type Check struct {
	Actor, Subject           Party
	Client                   string
	PublicClient             bool
	Audiences, Scope         []string
	ActorScope, SubjectScope []string // nil: assume the requested scope
	Reason                   string
	TTL                      time.Duration
	// SubjectByUserID asks about an exchange that names the subject by user ID (impersonation,
	// whoever acts) rather than sending the subject's token.
	SubjectByUserID bool
}

// Request turns the question into the request the token endpoint would build.
func (c Check) Request(now time.Time) Request {
	now = now.Truncate(time.Second)
	a, s := c.Actor, c.Subject
	a.HasToken, a.ExpiresAt, a.TokenClient, a.Scope = true, now.Add(time.Hour), c.Client, c.ActorScope
	if a.Scope == nil {
		a.Scope = c.Scope
	}
	if a.Kind == "user" {
		a.SignIn = &SignIn{ID: "(assumed)", Found: true, UserID: a.ID, Active: true, MFAAt: now}
	}
	mode := ModeFor(a.Kind, c.SubjectByUserID)
	if !c.SubjectByUserID {
		s.HasToken, s.ExpiresAt, s.Scope, s.TokenClient = true, now.Add(time.Hour), c.SubjectScope, c.Client
		if s.Scope == nil {
			s.Scope = c.Scope
		}
	}
	return Request{Mode: mode, Actor: a, Subject: s, Client: c.Client, PublicClient: c.PublicClient,
		Audiences: c.Audiences, Scope: c.Scope, TTL: c.TTL, Reason: c.Reason, Now: now}
}
