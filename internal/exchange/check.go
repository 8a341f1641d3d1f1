package exchange

import "time"

// Check is a "would this exchange be allowed?" question asked without tokens (`signet policy
// check`, the admin API): the actor and subject are assumed to hold fresh tokens (an hour left)
// issued to the client, with the given scopes.
type Check struct {
	Actor, Subject           Party
	Client                   string
	PublicClient             bool
	Audiences, Scope         []string
	ActorScope, SubjectScope []string // nil: assume the requested scope
	Reason                   string
	TTL                      time.Duration
}

// Request turns the question into the request the token endpoint would build.
func (c Check) Request(now time.Time) Request {
	now = now.Truncate(time.Second)
	a, s := c.Actor, c.Subject
	a.HasToken, a.ExpiresAt, a.TokenClient, a.Scope = true, now.Add(time.Hour), c.Client, c.ActorScope
	if a.Scope == nil {
		a.Scope = c.Scope
	}
	mode := ModeImpersonation
	if a.Kind != "user" {
		mode = ModeDelegation
		s.HasToken, s.ExpiresAt, s.Scope = true, now.Add(time.Hour), c.SubjectScope
		if s.Scope == nil {
			s.Scope = c.Scope
		}
	}
	return Request{Mode: mode, Actor: a, Subject: s, Client: c.Client, PublicClient: c.PublicClient,
		Audiences: c.Audiences, Scope: c.Scope, TTL: c.TTL, Reason: c.Reason, Now: now}
}
