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

func refreshReq() RefreshRequest {
	rule := Rule{Name: "imp", Mode: ModeImpersonation, Actors: Selector{Roles: []string{"support"}}, Subjects: Subjects{Roles: []string{"customer"}},
		Audiences: []string{"orders-api", "billing-api"}, Scopes: []string{"read", "write"}, AllowRefresh: true, RefreshTTL: Duration(8 * time.Hour)}
	return RefreshRequest{Rule: &rule, Session: session(), Actor: staff(), Subject: customer(), Client: "admin-spa",
		Scope: []string{"read", "write"}, Audience: []string{"orders-api", "billing-api"}, Now: t0.Add(time.Hour)}
}

// TestDecideRefreshReappliesTheRuleInForce: a narrowed rule narrows the next refresh at once.
func TestDecideRefreshReappliesTheRuleInForce(t *testing.T) {
	d, ref := DecideRefresh(refreshReq())
	if ref != nil || !slices.Equal(d.Scope, []string{"read", "write"}) || len(d.Audience) != 2 || !d.ExpiresAt.Equal(t0.Add(time.Hour+15*time.Minute)) {
		t.Fatalf("unchanged rule: %+v %v", d, ref)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*RefreshRequest)
		code  string
		check func(*RefreshDecision) bool
	}{
		{"scope narrowed", func(r *RefreshRequest) { r.Rule.Scopes = []string{"read"} }, "", func(d *RefreshDecision) bool { return slices.Equal(d.Scope, []string{"read"}) }},
		{"audience narrowed", func(r *RefreshRequest) { r.Rule.Audiences = []string{"billing-api"} }, "", func(d *RefreshDecision) bool { return slices.Equal(d.Audience, []string{"billing-api"}) }},
		{"audience gone", func(r *RefreshRequest) { r.Rule.Audiences = []string{"hr-api"} }, "invalid_grant", nil},
		{"max_ttl shortened", func(r *RefreshRequest) { r.Rule.MaxTTL = Duration(time.Minute) }, "", func(d *RefreshDecision) bool { return d.ExpiresAt.Equal(t0.Add(time.Hour + time.Minute)) }},
		{"refresh_ttl shortened past now", func(r *RefreshRequest) { r.Rule.RefreshTTL = Duration(30 * time.Minute) }, "invalid_grant", nil},
		{"refresh_ttl shortened caps the token", func(r *RefreshRequest) { r.Rule.RefreshTTL = Duration(time.Hour + 5*time.Minute) }, "", func(d *RefreshDecision) bool {
			return d.ExpiresAt.Equal(t0.Add(time.Hour + 5*time.Minute))
		}},
		{"asking beyond the narrowed rule", func(r *RefreshRequest) { r.Rule.Scopes = []string{"read"}; r.Requested = []string{"write"} }, "invalid_scope", nil},
		{"allow_refresh turned off", func(r *RefreshRequest) { r.Rule.AllowRefresh = false }, "invalid_grant", nil},
		{"rule disabled", func(r *RefreshRequest) { r.Rule.Disabled = true }, "invalid_grant", nil},
		{"rule removed", func(r *RefreshRequest) { r.Rule = nil }, "invalid_grant", nil},
		{"actor lost the role", func(r *RefreshRequest) { r.Actor.Roles = nil }, "invalid_grant", nil},
		{"actor locked", func(r *RefreshRequest) { r.Actor.Locked = true }, "invalid_grant", nil},
		{"subject locked", func(r *RefreshRequest) { r.Subject.Locked = true }, "invalid_grant", nil},
		{"session ended", func(r *RefreshRequest) { r.Session.EndedAt = t0.Add(time.Minute) }, "invalid_grant", nil},
		{"kill switch", func(r *RefreshRequest) { r.KillSwitch = true }, "access_denied", nil},
		{"kill switch spares delegation", func(r *RefreshRequest) {
			r.KillSwitch, r.Session.Kind, r.Rule.Mode = true, ModeDelegation, ModeDelegation
			r.Actor = Party{Kind: "serviceaccount", ID: "sa-x", Roles: []string{"support"}}
		}, "", func(d *RefreshDecision) bool { return true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := refreshReq()
			tc.edit(&r)
			d, ref := DecideRefresh(r)
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
