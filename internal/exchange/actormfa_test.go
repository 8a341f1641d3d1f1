package exchange

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// mfaRules: one impersonation rule requiring the actor's second factor within 15 minutes.
func mfaRules() []Rule {
	r := rules[0]
	r.Name, r.RequireActorMFA = "support-with-mfa", Duration(15*time.Minute)
	return []Rule{r}
}

// signedIn is the staff member's token from their own sign-in, with a second factor passed at mfaAt
// (zero: none).
func signedIn(mfaAt time.Time) Request {
	r := impersonation()
	r.Actor.SignIn = &SignIn{ID: "bs-1", Found: true, UserID: r.Actor.ID, Active: true, MFAAt: mfaAt}
	return r
}

// TestRequireActorMFA: a rule with require_actor_mfa allows an impersonation only when the actor
// token's sign-in is the actor's, still active, and passed a second factor within the window at the
// decision time; every other case is refused saying what the actor's token lacks.
func TestRequireActorMFA(t *testing.T) {
	for _, tc := range []struct {
		name     string
		req      func() Request
		contains []string // "" wants allowed
	}{
		{"fresh second factor", func() Request { return signedIn(t0.Add(-14 * time.Minute)) }, nil},
		{"exactly at the window's edge", func() Request { return signedIn(t0.Add(-15 * time.Minute)) }, nil},
		{"stale second factor", func() Request { return signedIn(t0.Add(-16*time.Minute - 500*time.Millisecond)) },
			[]string{`rule "support-with-mfa" requires the actor to have passed a second factor within 15m0s`, "sign-in bs-1 passed one 16m0s ago", "acr_values=mfa"}},
		{"password-only sign-in", func() Request { return signedIn(time.Time{}) }, []string{"within 15m0s", "sign-in bs-1 passed none"}},
		{"no sid (client credentials, signet token issue)", impersonation, []string{"does not come from a sign-in (it has no sid)"}},
		{"ended sign-in", func() Request { r := signedIn(t0.Add(-time.Minute)); r.Actor.SignIn.Active = false; return r }, []string{"sign-in bs-1 has ended"}},
		{"sign-in no longer stored", func() Request { r := signedIn(t0); r.Actor.SignIn = &SignIn{ID: "bs-gone"}; return r }, []string{"sign-in bs-gone is not an existing sign-in of user sam"}},
		{"someone else's sign-in", func() Request { r := signedIn(t0); r.Actor.SignIn.UserID = "u-olga"; return r }, []string{"sign-in bs-1 is not an existing sign-in of user sam"}},
		{"a service account never has one", func() Request {
			r := signedIn(t0)
			r.Actor.Kind, r.Actor.Roles = "serviceaccount", []string{"support"}
			return r
		}, []string{"is not an existing sign-in of serviceaccount sam"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(mfaRules(), tc.req())
			if tc.contains == nil {
				if err != nil || d.ActorMFA != 15*time.Minute {
					t.Fatalf("want allowed with ActorMFA 15m, got %+v %v", d, err)
				}
				return
			}
			var ref *Refusal
			if !errors.As(err, &ref) || ref.Code != "invalid_grant" || ref.Rule != "support-with-mfa" {
				t.Fatalf("want invalid_grant by the rule, got %v", err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(ref.Description, s) {
					t.Errorf("description %q lacks %q", ref.Description, s)
				}
			}
		})
	}
	t.Run("a rule without it ignores the sign-in", func(t *testing.T) {
		if d, err := Decide(rules, impersonation()); err != nil || d.ActorMFA != 0 {
			t.Fatalf("%+v %v", d, err)
		}
	})
	t.Run("another matching rule without it still allows", func(t *testing.T) {
		both := append(mfaRules(), rules[0])
		if d, err := Decide(both, impersonation()); err != nil || d.Rule != rules[0].Name {
			t.Fatalf("%+v %v", d, err)
		}
	})
	t.Run("refused before anything is said about the subject", func(t *testing.T) {
		r := impersonation()
		r.Subject.Locked = true
		_, err := Decide(mfaRules(), r)
		if err == nil || strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), "no sid") {
			t.Fatalf("an actor without a second factor must learn nothing of the subject: %v", err)
		}
	})
}

// TestRequireActorMFAValidates: the window is a duration between 0 and 24h, written like the other
// durations (absent or empty: not required), and only impersonation rules may ask for it.
func TestRequireActorMFAValidates(t *testing.T) {
	r := mfaRules()[0]
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	r.RequireActorMFA = Duration(25 * time.Hour)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "require_actor_mfa 25h0m0s: must be between 0 (not required) and 24h0m0s") {
		t.Fatalf("too long a window: %v", err)
	}
	r.RequireActorMFA = Duration(-time.Minute)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "require_actor_mfa -1m0s") {
		t.Fatalf("a negative window: %v", err)
	}
	d := rules[2]
	d.RequireActorMFA = Duration(5 * time.Minute)
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "require_actor_mfa applies to impersonation only") {
		t.Fatalf("a delegation rule: %v", err)
	}

	var j Rule
	if err := json.Unmarshal([]byte(`{"require_actor_mfa":""}`), &j); err != nil || j.RequireActorMFA != 0 {
		t.Fatalf("empty means not required: %v %v", j.RequireActorMFA, err)
	}
	if err := json.Unmarshal([]byte(`{"require_actor_mfa":"5m"}`), &j); err != nil || time.Duration(j.RequireActorMFA) != 5*time.Minute {
		t.Fatalf("5m: %v %v", j.RequireActorMFA, err)
	}
	var y Rule
	if err := yaml.Unmarshal([]byte("require_actor_mfa: 10m\n"), &y); err != nil || time.Duration(y.RequireActorMFA) != 10*time.Minute {
		t.Fatalf("yaml: %v %v", y.RequireActorMFA, err)
	}
}

// TestCheckAssumesAFreshSecondFactor: `policy check` has no token, so it assumes a user actor just
// passed a second factor, and says that the rule requires one; a service account actor has none.
func TestCheckAssumesAFreshSecondFactor(t *testing.T) {
	c := Check{Actor: staff(), Subject: customer(), Client: "admin-spa", PublicClient: true, Reason: "r", SubjectByUserID: true}
	d, err := Decide(mfaRules(), c.Request(t0))
	if err != nil || d.ActorMFA != 15*time.Minute {
		t.Fatalf("a user actor: %+v %v", d, err)
	}
	c.Actor = Party{Kind: "serviceaccount", ID: "sa-1", Name: "agent", Roles: []string{"support"}}
	if _, err := Decide(mfaRules(), c.Request(t0)); err == nil || !strings.Contains(err.Error(), "no sid") {
		t.Fatalf("a service account actor: %v", err)
	}
}
