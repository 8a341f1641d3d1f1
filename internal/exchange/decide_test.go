package exchange

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var rules = []Rule{
	{Name: "support-impersonates-customers", Mode: ModeImpersonation, Actors: Selector{Roles: []string{"support"}},
		Subjects: Subjects{Roles: []string{"customer"}, ExcludeUsers: []string{"vip"}}, Clients: []string{"admin-spa"},
		Audiences: []string{"orders-api", "billing-api"}, Scopes: []string{"read", "write"}, MaxTTL: Duration(30 * time.Minute), RequireReason: true},
	{Name: "ops-impersonates-admins", Mode: ModeImpersonation, Actors: Selector{Users: []string{"olga"}},
		Subjects: Subjects{Roles: []string{"admin"}}, Audiences: []string{"orders-api"}, Scopes: []string{"read"}},
	{Name: "agent-acts-for-users", Mode: ModeDelegation, Actors: Selector{ServiceAccounts: []string{"agent"}},
		Subjects: Subjects{Users: []string{"*"}}, Audiences: []string{"orders-api"}, Scopes: []string{"read", "write", "delete"}},
	{Name: "off", Mode: ModeDelegation, Disabled: true, Actors: Selector{ServiceAccounts: []string{"old-agent"}}, Subjects: Subjects{Users: []string{"*"}}, Audiences: []string{"orders-api"}},
}

func staff() Party {
	return Party{Kind: "user", ID: "u-sam", Name: "sam", Roles: []string{"support"}, HasToken: true, Scope: []string{"read", "write", "admin"}, ExpiresAt: t0.Add(time.Hour), TokenClient: "admin-spa"}
}

func customer() Party {
	return Party{Kind: "user", ID: "u-dana", Name: "dana", Roles: []string{"customer"}}
}

func impersonation() Request {
	return Request{Mode: ModeImpersonation, Actor: staff(), Subject: customer(), Client: "admin-spa", PublicClient: true, Reason: "ticket 4812", Now: t0}
}

func delegation() Request {
	return Request{Mode: ModeDelegation, Client: "agent-app",
		Actor:   Party{Kind: "serviceaccount", ID: "sa-1", Name: "agent", HasToken: true, Scope: []string{"x"}, ExpiresAt: t0.Add(time.Hour), TokenClient: "agent-app"},
		Subject: Party{Kind: "user", ID: "u-dana", Name: "dana", Roles: []string{"customer"}, HasToken: true, Scope: []string{"read", "write"}, Audience: []string{"app"}, ExpiresAt: t0.Add(10 * time.Minute), TokenClient: "web"},
		Now:     t0}
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      func() Request
		code     string   // "" means allowed
		contains []string // in the description
		check    func(t *testing.T, d *Decision)
	}{
		{"impersonation allowed with reason, scope = ceiling ∩ actor rights, 30m cap", impersonation, "", nil, func(t *testing.T, d *Decision) {
			if d.Rule != "support-impersonates-customers" || !slices.Equal(d.Scope, []string{"read", "write"}) || !d.ExpiresAt.Equal(t0.Add(30*time.Minute)) || len(d.Audience) != 2 {
				t.Fatalf("%+v", d)
			}
		}},
		{"requested scope beyond the ceiling", func() Request { r := impersonation(); r.Scope = []string{"admin"}; return r }, "invalid_scope", []string{`"admin"`, "read write"}, nil},
		{"requested scope beyond the actor's rights", func() Request {
			r := impersonation()
			r.Actor.Scope = []string{"read"}
			r.Scope = []string{"write"}
			return r
		}, "invalid_scope", []string{`"write"`}, nil},
		{"narrower scope granted as asked", func() Request { r := impersonation(); r.Scope = []string{"read"}; return r }, "", nil, func(t *testing.T, d *Decision) {
			if !slices.Equal(d.Scope, []string{"read"}) {
				t.Fatal(d.Scope)
			}
		}},
		{"audience outside the rule", func() Request { r := impersonation(); r.Audiences = []string{"hr-api"}; return r }, "invalid_target", []string{`"hr-api"`, "orders-api"}, nil},
		{"reason required", func() Request { r := impersonation(); r.Reason = " "; return r }, "invalid_request", []string{"requires a reason"}, nil},
		{"lifetime is the minimum of request, rule and actor token", func() Request {
			r := impersonation()
			r.Actor.ExpiresAt = t0.Add(5 * time.Minute)
			return r
		}, "", nil, func(t *testing.T, d *Decision) {
			if !d.ExpiresAt.Equal(t0.Add(5 * time.Minute)) {
				t.Fatal(d.ExpiresAt)
			}
		}},
		{"requested lifetime shorter still", func() Request { r := impersonation(); r.TTL = time.Minute; return r }, "", nil, func(t *testing.T, d *Decision) {
			if !d.ExpiresAt.Equal(t0.Add(time.Minute)) {
				t.Fatal(d.ExpiresAt)
			}
		}},
		{"actor without the role", func() Request { r := impersonation(); r.Actor.Roles = nil; return r }, "unauthorized_client", []string{"no impersonation rule lets user sam impersonate user u-dana", "is not among its actors"}, nil},
		{"excluded subject", func() Request { r := impersonation(); r.Subject.ID, r.Subject.Name = "vip", "vip"; return r }, "unauthorized_client", []string{"is not among its subjects"}, nil},
		{"subject holding a role the actor lacks", func() Request {
			r := impersonation()
			r.Subject.Roles = []string{"customer", "admin"}
			return r
		}, "unauthorized_client", []string{"user u-dana is not among its subjects"}, nil},
		{"a rule naming that role allows it", func() Request {
			r := impersonation()
			r.Actor = Party{Kind: "user", ID: "u-olga", Name: "olga", HasToken: true, Scope: []string{"read"}, ExpiresAt: t0.Add(time.Hour), TokenClient: "console"}
			r.Subject.Roles = []string{"admin"}
			r.Client, r.PublicClient = "console", false
			return r
		}, "", nil, func(t *testing.T, d *Decision) {
			if d.Rule != "ops-impersonates-admins" || !d.ExpiresAt.Equal(t0.Add(DefaultImpersonationTTL)) {
				t.Fatalf("%+v", d)
			}
		}},
		{"self-impersonation", func() Request { r := impersonation(); r.Subject = r.Actor; return r }, "invalid_request", []string{"same"}, nil},
		{"locked subject", func() Request { r := impersonation(); r.Subject.Locked = true; return r }, "invalid_grant", []string{"locked"}, nil},
		{"unknown user looks like a non-matching subject", func() Request {
			r := impersonation()
			r.Subject = Party{Kind: "user", ID: "u-ghost", Unknown: true}
			return r
		}, "unauthorized_client", []string{"is not among its subjects"}, nil},
		{"public client not listed", func() Request { r := impersonation(); r.Client = "other-spa"; return r }, "unauthorized_client", []string{`client "other-spa" is not among its clients`}, nil},
		{"delegation allowed, scope = ceiling ∩ subject token, lifetime ≤ subject token", delegation, "", nil, func(t *testing.T, d *Decision) {
			if !slices.Equal(d.Scope, []string{"read", "write"}) || !d.ExpiresAt.Equal(t0.Add(10*time.Minute)) || d.Audience[0] != "orders-api" {
				t.Fatalf("%+v", d)
			}
		}},
		{"delegation by an unlisted service account", func() Request { r := delegation(); r.Actor.Name, r.Actor.ID = "old-agent", "sa-2"; return r }, "unauthorized_client", []string{`"off": disabled`}, nil},
		{"delegation cannot widen beyond the subject token", func() Request { r := delegation(); r.Scope = []string{"delete"}; return r }, "invalid_scope", []string{`"delete"`}, nil},
		{"delegation of a service account subject", func() Request { r := delegation(); r.Subject.Kind = "serviceaccount"; return r }, "invalid_request", []string{"must be a user"}, nil},
		{"expired input token", func() Request { r := delegation(); r.Subject.ExpiresAt = t0; return r }, "invalid_grant", []string{"expires now"}, nil},
		{"down-scoping of an own token", func() Request {
			return Request{Mode: ModeDownscope, Client: "web", Now: t0, Scope: []string{"read"}, Audiences: []string{"app"},
				Subject: Party{Kind: "user", ID: "u-dana", HasToken: true, Scope: []string{"read", "write"}, Audience: []string{"app", "x"}, ExpiresAt: t0.Add(2 * time.Hour), TokenClient: "web"}}
		}, "", nil, func(t *testing.T, d *Decision) {
			if d.Rule != "" || !slices.Equal(d.Scope, []string{"read"}) || !slices.Equal(d.Audience, []string{"app"}) || !d.ExpiresAt.Equal(t0.Add(time.Hour)) {
				t.Fatalf("%+v", d)
			}
		}},
		{"down-scoping someone else's token explains delegation (the ZITADEL trap)", func() Request {
			return Request{Mode: ModeDownscope, Client: "backend", Now: t0, Subject: Party{Kind: "user", ID: "u-dana", HasToken: true, TokenClient: "web", ExpiresAt: t0.Add(time.Hour)}}
		}, "unauthorized_client", []string{"issued to client \"web\"", "actor_token", "signet policy add --mode delegation"}, nil},
		{"down-scoping cannot add an audience", func() Request {
			return Request{Mode: ModeDownscope, Client: "web", Now: t0, Audiences: []string{"other"}, Subject: Party{Kind: "user", ID: "u", HasToken: true, Audience: []string{"app"}, TokenClient: "web", ExpiresAt: t0.Add(time.Hour)}}
		}, "invalid_target", []string{`"other"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(rules, tc.req())
			if tc.code == "" {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				if tc.check != nil {
					tc.check(t, d)
				}
				return
			}
			var ref *Refusal
			if !errors.As(err, &ref) || ref.Code != tc.code {
				t.Fatalf("want %s, got %v", tc.code, err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(ref.Description, s) {
					t.Errorf("description %q lacks %q", ref.Description, s)
				}
			}
		})
	}
	t.Run("no rule of the mode at all", func(t *testing.T) {
		_, err := Decide(nil, impersonation())
		var ref *Refusal
		if !errors.As(err, &ref) || !strings.Contains(ref.Description, "signet policy add") {
			t.Fatalf("%v", err)
		}
	})
}

func TestRefreshLifetime(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want time.Duration
	}{
		{Rule{Mode: ModeImpersonation, AllowRefresh: true}, time.Hour},
		{Rule{Mode: ModeDelegation, AllowRefresh: true}, 8 * time.Hour},
		{Rule{Mode: ModeDelegation, AllowRefresh: true, RefreshTTL: Duration(3 * time.Hour)}, 3 * time.Hour},
		{Rule{Mode: ModeDelegation, AllowRefresh: true, RefreshTTL: Duration(100 * time.Hour)}, MaxRefreshTTL},
	} {
		if got := tc.rule.RefreshLifetime(); got != tc.want {
			t.Errorf("%+v: refresh lifetime %s, want %s", tc.rule, got, tc.want)
		}
	}
	short := Rule{Name: "short", Mode: ModeDelegation, Actors: Selector{Roles: []string{"x"}}, Subjects: Subjects{Users: []string{"*"}}, Audiences: []string{"api"},
		MaxTTL: Duration(time.Hour), AllowRefresh: true, RefreshTTL: Duration(30 * time.Minute)}
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "refresh_ttl is shorter than max_ttl") {
		t.Fatalf("a session shorter than its first token: %v", err)
	}
}

func TestRuleValidate(t *testing.T) {
	good := rules[0]
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Rule{Name: "bad rule", Mode: "impersonate", Audiences: []string{"*"}, MaxTTL: Duration(2 * time.Hour), RefreshTTL: Duration(48 * time.Hour)}
	err := bad.Validate()
	for _, want := range []string{"name", "mode", "actors", "subjects", `"*" is not allowed`, "max_ttl", "refresh_ttl 48h0m0s: must be between 0 and 24h", "refresh_ttl is set but allow_refresh is not"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validation lacks %q: %v", want, err)
		}
	}
}
