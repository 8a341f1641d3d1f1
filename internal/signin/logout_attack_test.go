package signin_test

import (
	"net/url"
	"testing"
)

// TestAttackLogoutReach: after RP-initiated logout (end_session with id_token_hint), a thief
// holding the session's tokens keeps using them: the access token, the refresh token, and a
// token delegated from it by token exchange. What would break: a sign-out that only clears a
// cookie. Signet revokes by the session ID every token issued from the session, and exchanged
// tokens carry it in their lineage.
func TestAttackLogoutReach(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	code, verifier := x.signIn(t, b)
	at, rt, idt := x.tokens(t, code, verifier)
	status, body := x.delegate(t, at, "access_token")
	if status != 200 {
		t.Fatalf("delegation refused: %d %v", status, body)
	}
	derived := body["access_token"].(string)

	p := b.Open("/oidc/v1/end_session?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"z"}}.Encode())
	if p.Location == nil || p.Location.Query().Get("state") != "z" {
		t.Fatalf("end_session with the session's hint did not sign out at once: %d %s", p.Status, p.Text())
	}
	if signedInAccount(t, b) {
		t.Error("the browser is still signed in")
	}
	if x.active(t, at) {
		t.Error("the access token survived the logout")
	}
	if status, body := x.refresh(rt); status == 200 {
		t.Errorf("the refresh token survived the logout: %v", body)
	}
	if x.active(t, derived) {
		t.Error("a token exchanged from the session's access token survived the logout")
	}
	if status, body := x.delegate(t, idt, "id_token"); status == 200 {
		t.Errorf("the session's ID token was exchanged after the logout: %v", body)
	}
}

// TestAttackSignOutElsewhere: "sign out everywhere else" on the account page must end the other
// sessions (a stolen laptop's) and their tokens, but not the session that asked. And ending a
// session by ID must only work for one's own sessions (another user's session ID guessed or seen).
func TestAttackSignOutElsewhere(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	here, there := x.NewBrowser(), x.NewBrowser()
	c1, v1 := x.signIn(t, here)
	hereAT, hereRT, _ := x.tokens(t, c1, v1)
	c2, v2 := x.signIn(t, there)
	thereAT, thereRT, _ := x.tokens(t, c2, v2)
	status, body := x.delegate(t, thereAT, "access_token")
	if status != 200 {
		t.Fatalf("delegation refused: %d %v", status, body)
	}
	derived := body["access_token"].(string)

	// Mallory, signed in herself, tries to end alice's session by its ID.
	x.CreateUserWithPassword("mallory", "mallory's own password")
	m := x.NewBrowser()
	x.rp.signIn(t, m, "mallory", "mallory's own password")
	x.rp.signIn(t, x.NewBrowser(), "mallory", "mallory's own password") // so her page has session forms
	acct := m.Open("/ui/account")
	csrf := acct.Forms[0].Values.Get("csrf")
	thereID, _, _ := cut(cookie(there, sessionCookie))
	if p := m.Post("/ui/account/sessions", url.Values{"csrf": {csrf}, "session": {thereID}}); p.Status != 404 {
		t.Errorf("ending another user's session answered %d", p.Status)
	}
	if !signedInAccount(t, there) || !x.active(t, thereAT) {
		t.Fatal("another user ended alice's session")
	}

	page := here.Open("/ui/account")
	var form int = -1
	for i, f := range page.Forms {
		if f.Values.Get("session") == "others" {
			form = i
		}
	}
	if form < 0 {
		t.Fatalf("no 'sign out everywhere else' form: %s", page.Text())
	}
	if p := here.Post(page.Forms[form].Action, page.Forms[form].Values); p.Status != 200 {
		t.Fatalf("sign out elsewhere: %d %s", p.Status, p.Text())
	}
	if signedInAccount(t, there) {
		t.Error("the other browser is still signed in")
	}
	if x.active(t, thereAT) || x.active(t, derived) {
		t.Error("the other session's access token (or one exchanged from it) is still active")
	}
	if status, _ := x.refresh(thereRT); status == 200 {
		t.Error("the other session's refresh token still refreshes")
	}
	if !signedInAccount(t, here) || !x.active(t, hereAT) {
		t.Error("signing out elsewhere ended the current session or its token")
	}
	if status, body := x.refresh(hereRT); status != 200 {
		t.Errorf("the current session's refresh token was refused: %v", body)
	}
}

func cut(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
