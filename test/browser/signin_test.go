package browser

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/store"
)

// A person opens the client's sign-in link, sees Signet's login page with the cursor in the username
// field, signs in, and the client gets a code it can exchange.
func TestSignIn(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	b := s.newTab("alice", 1280, 900)

	a := s.rp.authorize()
	b.open(a.URL)
	b.at(s.env.URL + "/ui/login/")
	b.do("wait for the login form", waitVisible("#username"))
	b.shot("login")
	if title := eval[string](b, "document.title"); !strings.Contains(title, "Signet") {
		t.Errorf("login page title %q does not name the product", title)
	}
	if brand := b.text(".brand"); brand != "Signet" {
		t.Errorf("login page brand %q, want Signet", brand)
	}
	if focused := eval[string](b, "document.activeElement.id"); focused != "username" {
		t.Errorf("the focused element is %q, want the username field", focused)
	}
	if first := eval[string](b, firstTabbable); first != "username" {
		t.Errorf("the first field in tab order is %q, want username", first)
	}
	for _, l := range []string{"Username", "Password"} {
		if got := b.text(`label[for="` + strings.ToLower(l) + `"]`); got != l {
			t.Errorf("label %q visible as %q", l, got)
		}
	}
	b.sees("Example App") // which application is asking

	b.signIn("alice", "correct horse battery")
	tok := s.callback(b, a)
	b.shot("callback")
	if tok.AccessToken == "" || tok.Extra("id_token") == nil {
		t.Fatalf("the exchange gave no access or ID token: %+v", tok)
	}

	var session bool
	for _, c := range b.cookies() {
		if !c.HTTPOnly || c.SameSite != "Lax" || !c.Secure || c.Path != "/" || c.Domain != "127.0.0.1" {
			t.Errorf("cookie %s: HttpOnly %v SameSite %q Secure %v Path %q Domain %q; want HttpOnly, Lax, Secure (loopback is a secure context), /, host-only",
				c.Name, c.HTTPOnly, c.SameSite, c.Secure, c.Path, c.Domain)
		}
		session = session || c.Name == "__Host-signet-session"
	}
	if !session {
		t.Errorf("no __Host-signet-session cookie after signing in; cookies: %v", cookieNames(b.cookies()))
	}
}

// A wrong password is said plainly, announced to screen readers, and the username is kept.
func TestWrongPassword(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	b := s.newTab("alice", 1280, 900)

	a := s.rp.authorize()
	b.open(a.URL)
	b.signIn("alice", "wrong horse battery")
	b.at(s.env.URL + "/ui/login/")
	b.shot("wrong-password")
	if got := b.text(`[role="alert"]`); got != "The username or password is incorrect." {
		t.Errorf("alert says %q", got)
	}
	if got := get(b, "read the username", valueOf("#username")); got != "alice" {
		t.Errorf("the username field holds %q after a wrong password, want alice", got)
	}
	if focused := eval[string](b, "document.activeElement.id"); focused != "password" {
		t.Errorf("focus is on %q after a wrong password, want the password field", focused)
	}
	// The person can correct it on the same page.
	b.typeInto("#password", "correct horse battery")
	b.press(`form button[type="submit"]`)
	s.callback(b, a)
}

// The bootstrap admin signs in with the password printed at first start and has to choose a new
// one before going on.
func TestBootstrapAdminChangesPassword(t *testing.T) {
	s := start(t, nil)
	printed := s.bootstrapPassword()
	b := s.newTab("admin", 1280, 900)

	a := s.rp.authorize()
	b.open(a.URL)
	b.signIn("admin", printed)
	b.do("wait for the change form", waitVisible("#new_password"))
	b.shot("choose-new-password")
	if h := b.text("h1"); h != "Choose a new password" {
		t.Errorf("after the printed password the page is %q, want Choose a new password", h)
	}
	b.sees("You need to choose a new password before you continue.")
	b.typeInto("#current_password", printed)
	b.typeInto("#new_password", "a much better passphrase")
	b.typeInto("#confirm_password", "a much better passphrase")
	b.press(`form button[type="submit"]`)
	s.callback(b, a)
	b.shot("callback")

	// The new password is the one that works now.
	u, err := s.env.Server.Store.GetUserByUsername(t.Context(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	if u.PasswordChangeRequired {
		t.Error("the admin still has to change the password")
	}
	other := s.newTab("admin again", 1280, 900)
	a2 := s.rp.authorize()
	other.open(a2.URL)
	other.signIn("admin", printed)
	other.at(s.env.URL + "/ui/login/")
	other.signIn("admin", "a much better passphrase")
	s.callback(other, a2)
}

// bootstrapPassword gives the bootstrap admin a known password, as the one printed at first start
// (testenv does not keep that one), still to be changed at first sign-in.
func (s *suite) bootstrapPassword() string {
	s.t.Helper()
	const printed = "printed-at-first-start-0"
	ctx := s.t.Context()
	u, err := s.env.Server.Store.GetUserByUsername(ctx, "admin")
	if err != nil {
		s.t.Fatalf("the bootstrap admin: %v", err)
	}
	if !u.PasswordChangeRequired {
		s.t.Fatal("Bootstrap created an admin that need not change the printed password")
	}
	u.PasswordHash = hashPassword(printed)
	if err := s.env.Server.Store.UpdateUser(ctx, u); err != nil {
		s.t.Fatal(err)
	}
	return printed
}

// A third-party application needs the person's consent: the page lists what it asks for; Deny
// tells the application access_denied, Allow gives it a code.
func TestConsent(t *testing.T) {
	s := start(t, func(c *store.Client) { c.ThirdParty = true; c.Name = "Partner Reports" })
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	b := s.newTab("alice", 1280, 900)

	a := s.rp.authorize()
	b.open(a.URL)
	b.signIn("alice", "correct horse battery")
	b.do("wait for the consent page", waitVisible(`button[value="allow"]`))
	b.shot("consent")
	b.sees("Partner Reports")
	scopes := eval[[]string](b, `[...document.querySelectorAll("ul.scopes li")].map(li => li.innerText)`)
	if len(scopes) < 3 {
		t.Errorf("consent lists %q; want openid, profile and email explained", scopes)
	}
	for _, want := range []string{"profile", "email"} {
		if !strings.Contains(strings.Join(scopes, "\n"), want) {
			t.Errorf("consent list %q does not mention %s", scopes, want)
		}
	}
	b.press(`button[value="deny"]`)
	b.do("wait for the relying party", waitVisible("#callback-ok"))
	b.shot("denied")
	if got := b.param("error"); got != "access_denied" {
		t.Errorf("deny: callback error %q, want access_denied", got)
	}
	if b.param("code") != "" || b.param("state") != a.State {
		t.Errorf("deny: code %q state %q", b.param("code"), b.param("state"))
	}

	// Denying created no session: the person signs in again and this time allows.
	a2 := s.rp.authorize()
	b.open(a2.URL)
	b.signIn("alice", "correct horse battery")
	b.do("wait for the consent page", waitVisible(`button[value="allow"]`))
	b.press(`button[value="allow"]`)
	s.callback(b, a2)
}

// The sign-out link without an ID token asks first; confirming ends the session: the cookie is
// gone and what the session issued is no longer active.
func TestSignOut(t *testing.T) {
	s := start(t, nil)
	s.env.CreateUserWithPassword("alice", "correct horse battery")
	b := s.newTab("alice", 1280, 900)

	a := s.rp.authorize()
	b.open(a.URL)
	b.signIn("alice", "correct horse battery")
	tok := s.callback(b, a)
	if !s.active(tok.AccessToken) {
		t.Fatal("a fresh access token is not active")
	}

	b.open(s.env.URL + "/oidc/v1/end_session")
	b.do("wait for the confirmation", waitVisible(`form button[type="submit"]`))
	b.shot("confirm")
	if h := b.text("h1"); h != "Sign out?" {
		t.Errorf("end_session without a hint shows %q, want a confirmation", h)
	}
	b.sees("Signed in as alice")
	b.press(`form button[type="submit"]`)
	b.shot("signed-out")
	if h := b.text("h1"); h != "You have signed out" {
		t.Errorf("after confirming: %q", h)
	}
	for _, c := range b.cookies() {
		if strings.Contains(c.Name, "session") {
			t.Errorf("cookie %s is still there after signing out", c.Name)
		}
	}
	if s.active(tok.AccessToken) {
		t.Error("the access token of the ended session is still active at introspection")
	}
	// The next sign-in asks for the password again.
	b.open(s.rp.authorize().URL)
	b.at(s.env.URL + "/ui/login/")
}

// active asks introspection (as the client) whether a token is active.
func (s *suite) active(token string) bool {
	s.t.Helper()
	status, body := s.env.PostAs(s.rp.client, oauth.IntrospectPath, map[string]string{"token": token})
	if status != http.StatusOK {
		s.t.Fatalf("introspection: %d %v", status, body)
	}
	return body["active"] == true
}
