package exchange

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func refusal(t *testing.T, err error) *Refusal {
	t.Helper()
	var ref *Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("want a refusal, got %v", err)
	}
	return ref
}

// TestRefusalsDoNotDiscloseTheSubject: whether a user ID names nobody, a user no rule names, a user
// holding a role the actor lacks, or a locked user no rule lets this actor reach, the caller reads
// the same refusal; only the operator's Detail differs.
func TestRefusalsDoNotDiscloseTheSubject(t *testing.T) {
	byID := func(p Party) Request {
		r := impersonation()
		p.HasToken = false
		r.Subject = p
		return r
	}
	unknown := byID(Party{Kind: "user", ID: "u-nobody", Unknown: true})
	unmatched := byID(Party{Kind: "user", ID: "u-nobody", Name: "zed", Roles: []string{"staff"}})
	admin := byID(Party{Kind: "user", ID: "u-nobody", Name: "root", Roles: []string{"customer", "admin"}})
	locked := byID(Party{Kind: "user", ID: "u-nobody", Name: "lee", Roles: []string{"staff"}, Locked: true})
	var want string
	for name, req := range map[string]Request{"unknown": unknown, "unmatched": unmatched, "holds admin": admin, "locked": locked} {
		ref := refusal(t, decideErr(Decide(rules, req)))
		if want == "" {
			want = ref.Code + ": " + ref.Description
		}
		if got := ref.Code + ": " + ref.Description; got != want {
			t.Errorf("%s: the caller can tell it apart:\n got %s\nwant %s", name, got, want)
		}
		for _, leak := range []string{"zed", "root", "lee", "holds role", "locked", "staff"} {
			if strings.Contains(ref.Description, leak) {
				t.Errorf("%s: description discloses %q: %s", name, leak, ref.Description)
			}
		}
	}
	if ref := refusal(t, decideErr(Decide(rules, admin))); !strings.Contains(ref.Detail, "holds role admin") {
		t.Errorf("the operator's detail must keep the real reason: %q", ref.Detail)
	}
	if ref := refusal(t, decideErr(Decide(rules, unknown))); !strings.Contains(ref.Detail, "no user has ID u-nobody") {
		t.Errorf("the operator's detail must say the ID is unknown: %q", ref.Detail)
	}
	// Once a rule lets this actor reach the user, "locked" may be said: the caller is entitled to.
	r := impersonation()
	r.Subject.Locked = true
	if ref := refusal(t, decideErr(Decide(rules, r))); !strings.Contains(ref.Description, "is locked") {
		t.Errorf("a locked subject the rule allows: %s", ref.Description)
	}
}

func decideErr(_ *Decision, err error) error { return err }

// TestActorTokenMustComeFromTheRequester: an actor token issued to another client is refused for
// confidential clients too, unless the rule lists that client in actor_token_clients.
func TestActorTokenMustComeFromTheRequester(t *testing.T) {
	r := delegation()
	r.Actor.TokenClient = "adm"
	ref := refusal(t, decideErr(Decide(rules, r)))
	if ref.Code != "unauthorized_client" || !strings.Contains(ref.Description, `issued to client "adm", not to "agent-app"`) || !strings.Contains(ref.Description, "actor_token_clients") {
		t.Fatalf("%+v", ref)
	}
	allowing := slices.Clone(rules)
	allowing[2].ActorTokenClients = []string{"adm"}
	if _, err := Decide(allowing, r); err != nil {
		t.Fatalf("a rule listing the client accepts its actor tokens: %v", err)
	}
	pub := impersonation()
	pub.Actor.TokenClient = "other-spa"
	allowing[0].ActorTokenClients = []string{"other-spa"}
	if ref := refusal(t, decideErr(Decide(allowing, pub))); !strings.Contains(ref.Description, "public client") {
		t.Fatalf("a public client never presents another client's actor token: %+v", ref)
	}
}

// TestImpersonationNeverStartsFromAnExchangedToken: one actor, one session.
func TestImpersonationNeverStartsFromAnExchangedToken(t *testing.T) {
	r := impersonation()
	r.Subject.HasToken, r.Subject.Session, r.Subject.Scope = true, "xs-1", []string{"read"}
	ref := refusal(t, decideErr(Decide(rules, r)))
	if ref.Code != "invalid_request" || !strings.Contains(ref.Description, "session xs-1") {
		t.Fatalf("%+v", ref)
	}
}

// TestSubjectScopeBoundsEveryTokenType: an ID token's scope (the scope of what it was minted from)
// bounds a delegation like an access token's would.
func TestSubjectScopeBoundsEveryTokenType(t *testing.T) {
	r := delegation()
	r.Subject.Scope = []string{"read"}
	r.Scope = []string{"read", "write"}
	ref := refusal(t, decideErr(Decide(rules, r)))
	if ref.Code != "invalid_scope" || !strings.Contains(ref.Description, `"write"`) {
		t.Fatalf("%+v", ref)
	}
	r.Subject.Scope = nil // an ID token that carries no scope grants nothing
	r.Scope = nil
	d, err := Decide(rules, r)
	if err != nil || len(d.Scope) != 0 {
		t.Fatalf("a subject with no scope yields none: %+v %v", d, err)
	}
}

func session() Session {
	return Session{ID: "xs-1", Kind: ModeImpersonation, Rule: "imp", CreatedAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
}

// refreshCase is a refresh of an impersonation session under rule imp, one hour after it opened.
type refreshCase struct {
	check     SessionCheck
	scope     []string
	audience  []string
	requested []string
}

func refreshReq() refreshCase {
	rule := Rule{Name: "imp", Mode: ModeImpersonation, Actors: Selector{Roles: []string{"support"}}, Subjects: Subjects{Roles: []string{"customer"}},
		Clients: []string{"admin-spa"}, Audiences: []string{"orders-api", "billing-api"}, Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: Duration(8 * time.Hour)}
	return refreshCase{check: SessionCheck{Rule: &rule, Session: session(), Actor: staff(), Subject: customer(), Client: "admin-spa", PublicClient: true, Refreshing: true, Now: t0.Add(time.Hour)},
		scope: []string{"read", "write"}, audience: []string{"orders-api", "billing-api"}}
}

func (c refreshCase) decide() (*RefreshDecision, *Refusal) {
	st, ref := RecheckSession(c.check)
	if ref != nil {
		return nil, ref
	}
	return DecideRefresh(RefreshRequest{Own: *st, Session: c.check.Session, Scope: c.scope, Audience: c.audience, Requested: c.requested, Now: c.check.Now})
}

// TestDecideRefreshReappliesTheRuleInForce: a narrowed rule narrows the next refresh at once.
func TestDecideRefreshReappliesTheRuleInForce(t *testing.T) {
	d, ref := refreshReq().decide()
	if ref != nil || !slices.Equal(d.Scope, []string{"read", "write"}) || len(d.Audience) != 2 || !d.ExpiresAt.Equal(t0.Add(time.Hour+15*time.Minute)) {
		t.Fatalf("unchanged rule: %+v %v", d, ref)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*refreshCase)
		code  string
		check func(*RefreshDecision) bool
	}{
		{"scope narrowed", func(r *refreshCase) { r.check.Rule.Scopes = []string{"read"} }, "", func(d *RefreshDecision) bool { return slices.Equal(d.Scope, []string{"read"}) }},
		{"audience narrowed", func(r *refreshCase) { r.check.Rule.Audiences = []string{"billing-api"} }, "", func(d *RefreshDecision) bool { return slices.Equal(d.Audience, []string{"billing-api"}) }},
		{"audience gone", func(r *refreshCase) { r.check.Rule.Audiences = []string{"hr-api"} }, "invalid_grant", nil},
		{"max_ttl shortened", func(r *refreshCase) { r.check.Rule.MaxTTL = Duration(time.Minute) }, "", func(d *RefreshDecision) bool { return d.ExpiresAt.Equal(t0.Add(time.Hour + time.Minute)) }},
		{"refresh_ttl shortened past now", func(r *refreshCase) { r.check.Rule.RefreshTTL = Duration(30 * time.Minute) }, "invalid_grant", nil},
		{"refresh_ttl shortened caps the token", func(r *refreshCase) { r.check.Rule.RefreshTTL = Duration(time.Hour + 5*time.Minute) }, "", func(d *RefreshDecision) bool {
			return d.ExpiresAt.Equal(t0.Add(time.Hour + 5*time.Minute))
		}},
		{"asking beyond the narrowed rule", func(r *refreshCase) { r.check.Rule.Scopes = []string{"read"}; r.requested = []string{"write"} }, "invalid_scope", nil},
		{"allow_refresh turned off", func(r *refreshCase) { r.check.Rule.AllowRefresh = false }, "invalid_grant", nil},
		{"rule disabled", func(r *refreshCase) { r.check.Rule.Disabled = true }, "invalid_grant", nil},
		{"rule removed", func(r *refreshCase) { r.check.Rule = nil }, "invalid_grant", nil},
		{"actor lost the role", func(r *refreshCase) { r.check.Actor.Roles = nil }, "invalid_grant", nil},
		{"actor locked", func(r *refreshCase) { r.check.Actor.Locked = true }, "invalid_grant", nil},
		{"subject locked", func(r *refreshCase) { r.check.Subject.Locked = true }, "invalid_grant", nil},
		{"session ended", func(r *refreshCase) { r.check.Session.EndedAt = t0.Add(time.Minute) }, "invalid_grant", nil},
		{"kill switch", func(r *refreshCase) { r.check.KillSwitch = true }, "access_denied", nil},
		{"kill switch spares delegation", func(r *refreshCase) {
			r.check.KillSwitch, r.check.Session.Kind, r.check.Rule.Mode = true, ModeDelegation, ModeDelegation
			r.check.Actor = Party{Kind: "serviceaccount", ID: "sa-x", Roles: []string{"support"}, TokenClient: "admin-spa"}
		}, "", func(d *RefreshDecision) bool { return true }},
		{"actor-token binding withdrawn", func(r *refreshCase) {
			r.check.PublicClient, r.check.Rule.ActorTokenClients = false, nil
			r.check.Actor.TokenClient = "other-spa"
		}, "invalid_grant", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := refreshReq()
			tc.edit(&r)
			d, ref := r.decide()
			if tc.code == "" {
				if ref != nil || !tc.check(d) {
					t.Fatalf("%+v %v", d, ref)
				}
				return
			}
			if ref == nil || ref.Code != tc.code {
				t.Fatalf("want %s, got %+v %v", tc.code, d, ref)
			}
		})
	}
}
