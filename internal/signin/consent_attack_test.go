package signin_test

import (
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

func thirdParty(c *store.Client) { c.ThirdParty = true }

func scope(s string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("scope", s) }

// toConsent signs alice in in b for scope and returns the consent page.
func (x *attackEnv) toConsent(t *testing.T, b *testenv.Browser, sc string) *testenv.Page {
	t.Helper()
	u, _ := x.authURL("s", scope(sc))
	p := b.Open(u)
	if p.HasForm("/ui/login/password") {
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	}
	if !p.HasForm("/ui/login/consent") {
		t.Fatalf("want the consent page, got %d %s (location %v)", p.Status, p.Text(), p.Location)
	}
	return p
}

func gotCode(p *testenv.Page) bool { return p.Location != nil && p.Location.Query().Get("code") != "" }

// TestAttackConsentBypass: a third-party client tries to get a code the user did not allow: with
// prompt=none, by finishing a second tab's request, by posting decision=allow with another
// request's id, and by asking for more scopes than were allowed. What would break: a code (and
// the user's data) without the user's decision for exactly that scope. Signet asks for consent
// until one covers the requested scopes, answers prompt=none with consent_required, keys each
// consent form's CSRF token to its own request, and ends a request once it is finished.
func TestAttackConsentBypass(t *testing.T) {
	x := newAttackEnv(t, "", thirdParty)
	b := x.NewBrowser()

	// prompt=none for a signed-in user who never consented (sign in via a request left at consent).
	first := x.toConsent(t, b, "openid")
	u, _ := x.authURL("s", scope("openid"), oauth2.SetAuthURLParam("prompt", "none"))
	if p := b.Open(u); gotCode(p) || p.Location == nil || p.Location.Query().Get("error") == "" {
		t.Errorf("prompt=none before consent: %d %v (no session yet is login_required; either way no code)", p.Status, p.Location)
	}

	// Two requests at consent in one browser: A (openid) and B (openid email). A's token with B's id.
	second := x.toConsent(t, b, "openid email")
	fa, fb := first.Form(t, "/ui/login/consent"), second.Form(t, "/ui/login/consent")
	v := url.Values{"id": {fb.Values.Get("id")}, "csrf": {fa.Values.Get("csrf")}, "decision": {"allow"}}
	if resp := raw(t, b, http.MethodPost, fa.Action, v); resp.StatusCode != http.StatusForbidden {
		t.Errorf("allow with another request's id answered %d, want 403", resp.StatusCode)
	}
	if _, err := x.Server.Store.GetConsent(t.Context(), x.alice.ID, x.rp.client.ID); err == nil {
		t.Fatal("a consent was stored by a cross-request post")
	}

	// A is allowed (openid only).
	if p := b.Submit(first, "/ui/login/consent", map[string]string{"decision": "allow"}); !gotCode(p) {
		t.Fatalf("allowing gave no code: %d %s", p.Status, p.Text())
	}
	// A again (second tab, already finished): no second code.
	if p := b.Submit(first, "/ui/login/consent", map[string]string{"decision": "allow"}); gotCode(p) || p.Status != http.StatusBadRequest {
		t.Errorf("a finished request's consent form gave %d %v", p.Status, p.Location)
	}
	// B asks for email too: allowing openid did not allow email; prompt=none says so.
	u, _ = x.authURL("s", scope("openid email"), oauth2.SetAuthURLParam("prompt", "none"))
	if p := b.Open(u); gotCode(p) || p.Location == nil || p.Location.Query().Get("error") != "consent_required" {
		t.Errorf("prompt=none for more scopes than consented: %v, want consent_required", p.Location)
	}
	u, _ = x.authURL("s", scope("openid email"))
	if p := b.Open(u); gotCode(p) || !p.HasForm("/ui/login/consent") {
		t.Errorf("more scopes than consented went without the consent page: %d %v", p.Status, p.Location)
	}
	// The consented scope alone: single sign-on without a page (the control).
	u, _ = x.authURL("s", scope("openid"))
	if p := b.Open(u); !gotCode(p) {
		t.Errorf("the consented scope did not sign in silently: %d %s", p.Status, p.Text())
	}
}

// TestAttackContinuedLoginRequest: a login request continued after it finished (another tab),
// after it expired, or from another browser. What would break: a second code from one sign-in,
// or an old link finishing a sign-in. Signet marks a request done once (atomically, so two tabs
// cannot both finish it: checked on both backends), checks its expiry on every step and binds it
// to the browser that started it.
func TestAttackContinuedLoginRequest(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				db = testenv.PostgresDSN(t)
			}
			x := newAttackEnv(t, db, nil)
			b := x.NewBrowser()
			u, _ := x.authURL("s")
			login := b.Open(u)
			if p := b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword}); !gotCode(p) {
				t.Fatalf("sign-in failed: %s", p.Text())
			}
			// The same form again (a second tab, or the back button).
			p := b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
			if gotCode(p) || p.Status != http.StatusBadRequest {
				t.Errorf("a finished request continued: %d %v", p.Status, p.Location)
			}
			f := login.Form(t, "/ui/login/password")
			if p := b.Open("/ui/login/step?id=" + url.QueryEscape(f.Values.Get("id"))); gotCode(p) || p.Status != http.StatusBadRequest {
				t.Errorf("a finished request's step page: %d %v", p.Status, p.Location)
			}

			// Another browser opens a live request's step page.
			u, _ = x.authURL("s")
			live := x.NewBrowser().Open(u).Form(t, "/ui/login/password")
			if p := x.NewBrowser().Open("/ui/login/step?id=" + url.QueryEscape(live.Values.Get("id"))); p.Status != http.StatusForbidden || p.HasForm("/ui/login/password") {
				t.Errorf("another browser opened a live login request: %d", p.Status)
			}
		})
	}
}

// TestAttackLoginRequestFinishedOnce: several tabs load a login request's last step at the same
// moment. What would break: two codes (or two sessions) from one sign-in. The store finishes a
// request once (a conditional update), so exactly one tab gets a code. Both backends.
func TestAttackLoginRequestFinishedOnce(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			db := ""
			if backend == "postgres" {
				db = testenv.PostgresDSN(t)
			}
			x := newAttackEnv(t, db, nil)
			b := x.NewBrowser()
			u, _ := x.authURL("s")
			f := b.Open(u).Form(t, "/ui/login/password")
			f.Values.Set("username", "alice")
			f.Values.Set("password", alicePassword)
			resp := raw(t, b, http.MethodPost, f.Action, f.Values)
			step := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusSeeOther || step == "" {
				t.Fatalf("password post: %d", resp.StatusCode)
			}
			const tabs = 6
			locations := make(chan string, tabs)
			c := &http.Client{Jar: b.HTTP.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for range tabs {
				go func() {
					resp, err := c.Get(b.Origin + step)
					if err != nil {
						locations <- "error: " + err.Error()
						return
					}
					resp.Body.Close()
					locations <- resp.Header.Get("Location")
				}()
			}
			codes := 0
			for range tabs {
				loc := <-locations
				if u, err := url.Parse(loc); err == nil && u.Query().Get("code") != "" {
					codes++
				}
			}
			if codes != 1 {
				t.Errorf("%d tabs got a code from one login request, want exactly 1", codes)
			}
		})
	}
}

// TestAttackExpiredLoginRequest: a login page left open past the request's 10 minutes (or a link
// to it kept) is posted. What would break: a sign-in finished from a stale page. Every step
// checks the expiry: an error page, no code.
func TestAttackExpiredLoginRequest(t *testing.T) {
	x := newAttackEnv(t, "", nil)
	var skew atomic.Int64
	x.Server.SignIn.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b := x.NewBrowser()
	u, _ := x.authURL("s")
	login := b.Open(u)
	skew.Store(int64(11 * time.Minute))
	p := b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	if gotCode(p) || p.Status != http.StatusBadRequest || p.HasForm("/ui/login/password") {
		t.Errorf("an expired request was continued: %d %v %s", p.Status, p.Location, p.Text())
	}
	skew.Store(0)
	if p := b.Submit(login, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword}); !gotCode(p) {
		t.Errorf("control: within its lifetime the request did not finish: %d %s", p.Status, p.Text())
	}
}
