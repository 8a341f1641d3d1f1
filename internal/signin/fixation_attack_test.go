package signin_test

import (
	"testing"

	"golang.org/x/oauth2"
)

// TestAttackSessionFixation: the attacker gets a session cookie into the victim's browser before
// the victim signs in: a value of their choosing, or the value of a session they signed in
// themselves on that computer. What would break: the cookie the attacker knows authenticates as
// the victim afterwards. Signet never adopts a session cookie it did not just issue: a sign-in
// always sets a new ID and secret, and the attacker's earlier session is ended, not continued.
func TestAttackSessionFixation(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	x.CreateUserWithPassword("mallory", "mallory's own password")
	for name, plant := range map[string]func(t *testing.T) string{
		"chosen value": func(t *testing.T) string { return "bs-01attackerchosen.attackerknowsthissecret" },
		"attacker's own earlier session": func(t *testing.T) string {
			m := x.NewBrowser()
			x.rp.signIn(t, m, "mallory", "mallory's own password")
			return cookie(m, sessionCookie)
		},
	} {
		t.Run(name, func(t *testing.T) {
			planted := plant(t)
			victim := x.browserWith(planted)
			x.signIn(t, victim, oauth2.SetAuthURLParam("prompt", "login"))
			got := cookie(victim, sessionCookie)
			if got == "" || got == planted {
				t.Fatalf("after sign-in the session cookie is %q (planted %q)", got, planted)
			}
			if !signedInAccount(t, victim) {
				t.Fatal("the victim is not signed in with the new cookie")
			}
			if signedInAccount(t, x.browserWith(planted)) {
				t.Error("the planted cookie authenticates after the victim signed in")
			}
		})
	}
}

// TestAttackSessionFixationOnReauthentication: a cookie that was valid (seen by an attacker
// before: a shared computer, a log) must be worth nothing after the user re-authenticates with
// prompt=login or steps up to a second factor. What would break: the old value rides on the
// stronger authentication. Signet renews the session's secret on every sign-in in it.
func TestAttackSessionFixationOnReauthentication(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	x.signIn(t, b)
	first := cookie(b, sessionCookie)

	x.signIn(t, b, oauth2.SetAuthURLParam("prompt", "login"))
	second := cookie(b, sessionCookie)
	if second == first {
		t.Fatal("prompt=login kept the session cookie")
	}
	if signedInAccount(t, x.browserWith(first)) {
		t.Error("the cookie from before prompt=login still authenticates")
	}

	// Step-up: acr_values=mfa asks a password-only session for a second factor (enrolled here).
	u, _ := x.authURL("s", oauth2.SetAuthURLParam("acr_values", "mfa"))
	p := b.Open(u)
	_, p = enrolTOTP(t, b, p)
	p = b.Submit(p, "/ui/login/recovery", nil)
	if p.Location == nil || p.Location.Query().Get("code") == "" {
		t.Fatalf("step-up did not end at the client: %d %s", p.Status, p.Text())
	}
	third := cookie(b, sessionCookie)
	if third == second {
		t.Fatal("the step-up kept the session cookie")
	}
	if signedInAccount(t, x.browserWith(second)) {
		t.Error("the cookie from before the step-up still authenticates")
	}
	if !signedInAccount(t, b) {
		t.Error("the browser is not signed in after the step-up")
	}
}
