package exchange

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// sessionCheck is an impersonation session opened an hour ago by rules[0], rechecked now.
func sessionCheck() SessionCheck {
	r := rules[0]
	r.AllowRefresh = true
	return SessionCheck{Rule: &r, Client: "admin-spa", PublicClient: true, Now: t0,
		Session: Session{ID: "xs-1", Kind: ModeImpersonation, Rule: r.Name, CreatedAt: t0.Add(-30 * time.Minute), ExpiresAt: t0.Add(time.Hour)},
		Actor:   staff(), Subject: customer()}
}

// TestRecheckSession: each reason an exchange session can no longer yield tokens, with its own
// description, and what it still allows when nothing changed.
func TestRecheckSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *SessionCheck)
		code string // "" means it stands
		frag string
	}{
		{"unchanged", func(c *SessionCheck) {}, "", ""},
		{"ended", func(c *SessionCheck) { c.Session.EndedAt = t0.Add(-time.Minute) }, "invalid_grant", "was ended at " + t0.Add(-time.Minute).Format(time.RFC3339)},
		{"kill switch", func(c *SessionCheck) { c.KillSwitch = true }, "access_denied", "kill switch"},
		{"kill switch spares delegation", func(c *SessionCheck) {
			c.KillSwitch = true
			c.Session.Kind = ModeDelegation
			c.Rule.Mode = ModeDelegation
		}, "", ""},
		{"rule gone", func(c *SessionCheck) { c.Rule = nil }, "invalid_grant", `rule "support-impersonates-customers", which allowed impersonation session xs-1, no longer exists`},
		{"session expired", func(c *SessionCheck) { c.Session.ExpiresAt = t0 }, "invalid_grant", "expired at " + t0.Format(time.RFC3339)},
		{"refresh lifetime passed", func(c *SessionCheck) { c.Session.CreatedAt = t0.Add(-DefaultImpersonationRefreshTTL) }, "invalid_grant", "expired at " + t0.Format(time.RFC3339)},
		{"rule of another mode now", func(c *SessionCheck) { c.Rule.Mode = ModeDelegation }, "invalid_grant", "it is now a delegation rule"},
		{"refresh no longer allowed", func(c *SessionCheck) { c.Rule.AllowRefresh = false; c.Refreshing = true }, "invalid_grant", "allow_refresh is off"},
		{"a derived token needs no refresh", func(c *SessionCheck) { c.Rule.AllowRefresh = false }, "", ""},
		{"actor locked", func(c *SessionCheck) { c.Actor.Locked = true }, "invalid_grant", "user sam is locked or disabled"},
		{"subject locked", func(c *SessionCheck) { c.Subject.Locked = true }, "invalid_grant", "user u-dana is locked"},
		{"actor lost the role", func(c *SessionCheck) { c.Actor.Roles = nil }, "invalid_grant", "is not among its actors"},
		{"client no longer listed", func(c *SessionCheck) { c.Rule.Clients = []string{"other-spa"} }, "invalid_grant", `client "admin-spa" is not among its clients`},
		{"actor token from another client", func(c *SessionCheck) { c.Actor.TokenClient = "console" }, "invalid_grant", `public client "admin-spa" may only send actor tokens issued to itself`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sessionCheck()
			tc.mod(&c)
			st, ref := RecheckSession(c)
			if tc.code == "" {
				if ref != nil {
					t.Fatalf("want the session to stand, got %v", ref)
				}
				ends := t0.Add(time.Hour)
				if c.Rule.AllowRefresh {
					ends = minTime(ends, c.Session.CreatedAt.Add(c.Rule.RefreshLifetime()))
				}
				if st.Rule != c.Rule.Name || !slices.Equal(st.Scopes, c.Rule.Scopes) || !slices.Equal(st.Audiences, c.Rule.Audiences) || !st.Ends.Equal(ends) || st.MaxTTL != c.Rule.TTL() {
					t.Fatalf("standing %+v, ends want %v", st, ends)
				}
				return
			}
			if st != nil || ref == nil || ref.Code != tc.code || !strings.Contains(ref.Description, tc.frag) {
				t.Fatalf("want %s containing %q, got %v %+v", tc.code, tc.frag, ref, st)
			}
			if ref.Error() != ref.Code+": "+ref.Description {
				t.Fatalf("Error() = %q", ref.Error())
			}
		})
	}
}

// TestActorTokenBinding: the actor token must come through the requesting client, or (confidential
// clients only) a client the rule lists in actor_token_clients.
func TestActorTokenBinding(t *testing.T) {
	r := Rule{Name: "r", ActorTokenClients: []string{"console"}}
	for _, tc := range []struct {
		name        string
		tokenClient string
		public      bool
		wantRefusal string
	}{
		{"issued to the requester", "backend", false, ""},
		{"issued to a listed client", "console", false, ""},
		{"issued to an unlisted client", "web", false, `list "web" in actor_token_clients of rule "r"`},
		{"a public requester, listed client", "console", true, "may only send actor tokens issued to itself"},
	} {
		ref := r.binding(Request{Client: "backend", PublicClient: tc.public, Actor: Party{TokenClient: tc.tokenClient}})
		switch {
		case tc.wantRefusal == "" && ref != nil:
			t.Errorf("%s: refused %v", tc.name, ref)
		case tc.wantRefusal != "" && (ref == nil || ref.Code != codeUnauthorizedClient || !strings.Contains(ref.Description, tc.wantRefusal)):
			t.Errorf("%s: want %q, got %v", tc.name, tc.wantRefusal, ref)
		}
	}
}

// TestSelectorsNameEachKind: rules name users, service accounts and clients by ID or name, and any of
// them by role; a name of one kind never matches another kind.
func TestSelectorsNameEachKind(t *testing.T) {
	sel := Selector{Users: []string{"olga"}, ServiceAccounts: []string{"sa-9"}, Clients: []string{"robot"}, Roles: []string{"ops"}}
	for _, tc := range []struct {
		p    Party
		want bool
	}{
		{Party{Kind: "user", ID: "u-1", Name: "olga"}, true},
		{Party{Kind: "user", ID: "olga"}, true},
		{Party{Kind: "serviceaccount", ID: "sa-2", Name: "olga"}, false},
		{Party{Kind: "serviceaccount", ID: "sa-9", Name: "nine"}, true},
		{Party{Kind: "client", ID: "robot"}, true},
		{Party{Kind: "user", ID: "robot"}, false},
		{Party{Kind: "client", ID: "sa-9"}, false},
		{Party{Kind: "client", ID: "c", Roles: []string{"ops"}}, true},
		{Party{Kind: "user", ID: "u-2", Roles: []string{"support"}}, false},
	} {
		if got := sel.matches(tc.p); got != tc.want {
			t.Errorf("%+v: matches %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestDerivedNarrowsToTheSessionsRules: a token derived from sessions' tokens gets no more than
// every session's rule allows now; asking for more is refused, and a rule that no longer allows any
// audience of the token refuses it.
func TestDerivedNarrowsToTheSessionsRules(t *testing.T) {
	decision := func() *Decision {
		return &Decision{Scope: []string{"read", "write"}, Audience: []string{"orders-api", "billing-api"}, ExpiresAt: t0.Add(time.Hour), RefreshUntil: t0.Add(2 * time.Hour)}
	}
	st := []SessionStanding{{Rule: "r1", Scopes: []string{"read", "write"}, Audiences: []string{"orders-api", "billing-api"}, Ends: t0.Add(90 * time.Minute)},
		{Rule: "r2", Scopes: []string{"read"}, Audiences: []string{"orders-api"}, Ends: t0.Add(30 * time.Minute)}}
	d := decision()
	if ref := Derived(d, nil, nil, st); ref != nil {
		t.Fatal(ref)
	}
	if !slices.Equal(d.Scope, []string{"read"}) || !slices.Equal(d.Audience, []string{"orders-api"}) || !d.ExpiresAt.Equal(t0.Add(30*time.Minute)) || !d.RefreshUntil.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("narrowed to %+v", d)
	}
	if ref := Derived(decision(), []string{"write"}, nil, st); ref == nil || ref.Code != codeInvalidScope || !strings.Contains(ref.Description, `scope "write" exceeds what rule "r2"`) {
		t.Fatalf("asking for a scope a session's rule no longer allows: %v", ref)
	}
	if ref := Derived(decision(), nil, []string{"billing-api"}, st); ref == nil || ref.Code != codeInvalidTarget || !strings.Contains(ref.Description, `audience "billing-api" is not allowed by rule "r2"`) {
		t.Fatalf("asking for an audience a session's rule no longer allows: %v", ref)
	}
	gone := []SessionStanding{{Rule: "r3", Scopes: []string{"read"}, Audiences: []string{"hr-api"}, Ends: t0.Add(time.Hour)}}
	if ref := Derived(decision(), nil, nil, gone); ref == nil || ref.Code != codeInvalidGrant || !strings.Contains(ref.Description, `rule "r3" no longer allows any audience`) {
		t.Fatalf("no audience left: %v", ref)
	}
}
