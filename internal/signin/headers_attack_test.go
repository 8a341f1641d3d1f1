package signin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/testenv"
)

// TestAttackHostedPageHeaders: every hosted page is framed by another site (clickjacking the
// password or consent form), cached by a shared proxy or the browser's history, or has its
// cookies read by script or sent cross-site. Signet sends a CSP with frame-ancestors 'none',
// X-Frame-Options DENY and Cache-Control no-store on every page, and its cookies are __Host-
// prefixed, HttpOnly, SameSite=Lax and Secure (on a loopback issuer too), with Path=/ and no Domain.
func TestAttackHostedPageHeaders(t *testing.T) {
	x := newAttackEnv(t, "", thirdParty)
	var pages []*testenv.Page
	b := x.NewBrowser()
	u, _ := x.authURL("s")
	login := b.Open(u) // the password page
	pages = append(pages, login)
	pages = append(pages, b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": "wrong"}))
	consent := b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	pages = append(pages, consent)
	b.Submit(consent, "/ui/login/consent", map[string]string{"decision": "allow"})
	u, _ = x.authURL("s", oauth2.SetAuthURLParam("response_mode", "form_post"))
	pages = append(pages, b.Open(u))                                             // form_post
	pages = append(pages, b.Open("/oauth/v2/authorize?client_id=nope"))          // error page
	pages = append(pages, b.Open("/ui/account"), b.Open("/ui/account/password")) // account
	pages = append(pages, b.Open("/ui/account/totp"))                            // enrolment
	pages = append(pages, b.Open("/oidc/v1/end_session"))                        // logout confirmation
	u, _ = x.authURL("s", withACR("mfa"), oauth2.SetAuthURLParam("prompt", "login"))
	p := b.Open(u)
	pages = append(pages, b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})) // enrolment in a sign-in
	pages = append(pages, x.NewBrowser().Open("/ui/login/step?id=lr-unknown"))                                                  // expired
	pages = append(pages, x.NewBrowser().Open("/oidc/v1/end_session?"+url.Values{"client_id": {x.rp.client.ID}}.Encode()))      // signed out

	for _, p := range pages {
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: not a page (%d %s)", p.URL, p.Status, p.Header.Get("Content-Type"))
			continue
		}
		if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q without frame-ancestors 'none'", p.URL, csp)
		}
		if got := p.Header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", p.URL, got)
		}
		if got := p.Header.Get("Cache-Control"); !strings.Contains(got, "no-store") {
			t.Errorf("%s: Cache-Control %q", p.URL, got)
		}
	}

	// Cookies, as set: the browser cookie at the authorization endpoint, the session at the finish.
	fresh := x.NewBrowser()
	u, _ = x.authURL("s")
	var setCookies []string
	resp := raw(t, fresh, http.MethodGet, u, nil)
	setCookies = append(setCookies, resp.Header.Values("Set-Cookie")...)
	f := fresh.Open(resp.Header.Get("Location")).Form(t, "/ui/login/password")
	f.Values.Set("username", "alice")
	f.Values.Set("password", alicePassword)
	resp = raw(t, fresh, http.MethodPost, f.Action, f.Values)
	resp = raw(t, fresh, http.MethodGet, resp.Header.Get("Location"), nil)
	setCookies = append(setCookies, resp.Header.Values("Set-Cookie")...)
	names := map[string]bool{}
	for _, line := range setCookies {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Errorf("Set-Cookie %q: %v", line, err)
			continue
		}
		names[c.Name] = true
		if !strings.HasPrefix(c.Name, "__Host-") || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %q lacks a protection: %s", c.Name, line)
		}
	}
	if !names[browserCookie] || !names[sessionCookie] {
		t.Errorf("cookies set: %v, want the browser and the session cookie", names)
	}
}
