package signin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAttackLoginCSRF: the attacker starts a sign-in in their own browser and makes the victim's
// browser post the password form with the attacker's credentials (so the victim would work in the
// attacker's account). Tried with the attacker's CSRF token, without one, and with the victim's
// browser having or not having Signet's browser cookie. What would break: the victim's browser
// ends up with a session (or the client with a code) for the attacker. Signet binds a login
// request to the browser cookie that started it and keys the CSRF token to that cookie, so a
// request started elsewhere is refused with 403 and no session cookie is set.
func TestAttackLoginCSRF(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	x.CreateUserWithPassword("mallory", "mallory's own password")
	attacker := x.NewBrowser()
	u, _ := x.authURL("s")
	page := attacker.Open(u)
	form := page.Form(t, "/ui/login/password")
	if form.Values.Get("csrf") == "" || form.Values.Get("id") == "" {
		t.Fatalf("login form without id and csrf: %v", form.Values)
	}
	for _, tc := range []struct {
		name         string
		victimCookie bool
		csrf         string
	}{
		{"attacker's token, victim without a browser cookie", false, form.Values.Get("csrf")},
		{"attacker's token, victim with a browser cookie", true, form.Values.Get("csrf")},
		{"no token, victim with a browser cookie", true, ""},
		{"no token, victim without a browser cookie", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victim := x.NewBrowser()
			if tc.victimCookie {
				u, _ := x.authURL("v")
				victim.Open(u)
				if cookie(victim, browserCookie) == "" {
					t.Fatal("opening the authorization endpoint gave no browser cookie")
				}
			}
			v := url.Values{"id": {form.Values.Get("id")}, "username": {"mallory"}, "password": {"mallory's own password"}}
			if tc.csrf != "" {
				v.Set("csrf", tc.csrf)
			}
			resp := raw(t, victim, http.MethodPost, form.Action, v)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-browser password post answered %d, want 403", resp.StatusCode)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("cross-browser password post redirected to %s", loc)
			}
			if cookie(victim, sessionCookie) != "" {
				t.Error("the victim's browser got a session cookie from a login started elsewhere")
			}
			if signedInAccount(t, victim) {
				t.Error("the victim's browser is signed in")
			}
		})
	}
	// The attacker's own browser, with a CSRF token of another login request of theirs: refused too.
	u2, _ := x.authURL("s2")
	other := attacker.Open(u2).Form(t, "/ui/login/password")
	v := url.Values{"id": {form.Values.Get("id")}, "csrf": {other.Values.Get("csrf")}, "username": {"mallory"}, "password": {"mallory's own password"}}
	if resp := raw(t, attacker, http.MethodPost, form.Action, v); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a CSRF token of another login request was accepted: %d", resp.StatusCode)
	}
}

// TestAttackAccountFormsCSRF: a page on another site posts the account forms (end sessions,
// remove TOTP, new recovery codes, change password) in a signed-in browser, without a token or
// with a wrong one. What would break: sessions ended, the second factor removed, codes replaced
// or the password changed by a third party. Signet requires the account CSRF token (keyed to the
// browser cookie) on every form: 403 and nothing changed.
func TestAttackAccountFormsCSRF(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	b := x.NewBrowser()
	x.signIn(t, b)
	before := cookie(b, sessionCookie)
	hash := x.userHash(t)
	for _, path := range []string{"/ui/account/sessions", "/ui/account/totp/remove", "/ui/account/recovery", "/ui/account/password"} {
		for _, csrf := range []string{"", "AAAA", strings.Repeat("x", 43)} {
			v := url.Values{"session": {"others"}, "current_password": {alicePassword}, "new_password": {"a brand new password"}, "confirm_password": {"a brand new password"}}
			if csrf != "" {
				v.Set("csrf", csrf)
			}
			if resp := raw(t, b, http.MethodPost, path, v); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q answered %d, want 403", path, csrf, resp.StatusCode)
			}
		}
	}
	if cookie(b, sessionCookie) != before || !signedInAccount(t, b) {
		t.Error("the session changed or ended")
	}
	if x.userHash(t) != hash {
		t.Error("the password changed through a forged form")
	}
}

// userHash is alice's stored password hash.
func (x *attackEnv) userHash(t *testing.T) string {
	t.Helper()
	u, err := x.Server.Store.GetUserByUsername(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}
