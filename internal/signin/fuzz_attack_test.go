package signin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// fuzzSignIn runs a sign-in of username in b for client c (redirect URI callback) and returns
// the last page: the client's redirect, or the page that stopped it.
func fuzzAuthorize(f *testing.F, b *testenv.Browser, c testenv.Client, extra url.Values) (*testenv.Page, string) {
	f.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid offline_access"}, "redirect_uri": {callback},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return b.Open("/oauth/v2/authorize?" + q.Encode()), verifier
}

// FuzzLoginForm posts arbitrary bodies to the password and second-factor steps through the real
// server handler. When the fuzzer asks, the browser's cookie and a live login request's id and
// CSRF token (a fresh request at the second-factor step for each input) are added, so the input
// reaches the step's own parsing and checks, not only the checks in front of them. Whatever the
// body, the answer is a page below 500 and never a panic.
func FuzzLoginForm(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	ctx := context.Background()
	// Wrong codes must not block the account for the rest of the run (that would keep inputs
	// from reaching the code check); the per-address limit still bounds argon2 work.
	env.Server.SignIn.Throttle.PerAccount = 1 << 30
	c := env.CreateClient(store.Client{Type: store.ClientWeb, RedirectURIs: []string{callback}, GrantTypes: []string{"authorization_code"}})
	u := env.CreateUserWithPassword("alice", alicePassword)
	u.MFARequired = true
	if err := env.Server.Store.UpdateUser(ctx, u); err != nil {
		f.Fatal(err)
	}
	b := env.NewBrowser()
	p, _ := fuzzAuthorize(f, b, c, nil)
	p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
	_, p = enrolTOTP(f, b, p)
	if p = b.Submit(p, "/ui/login/recovery", nil); p.Location == nil {
		f.Fatalf("enrolment sign-in did not finish: %s", p.Text())
	}
	// A login request at the second-factor step, as a template for one fresh request per input.
	p, _ = fuzzAuthorize(f, b, c, url.Values{"prompt": {"login"}})
	form := p.Form(f, "/ui/login/password")
	form.Values.Set("username", "alice")
	form.Values.Set("password", alicePassword)
	if resp := raw(f, b, http.MethodPost, form.Action, form.Values); resp.StatusCode != http.StatusSeeOther {
		f.Fatalf("password: %d", resp.StatusCode)
	}
	template, err := env.Server.Store.GetLoginRequest(ctx, form.Values.Get("id"))
	if err != nil {
		f.Fatal(err)
	}
	browser := cookie(b, browserCookie)
	// The CSRF token a page of request id carries in this browser (cookies.go's derivation),
	// checked against the token the page showed.
	csrf := func(id string) string {
		return base64.RawURLEncoding.EncodeToString(env.Server.Secrets.HashToken("csrf\x00" + id + "\x00" + browser))
	}
	if csrf(template.ID) != form.Values.Get("csrf") {
		f.Fatal("the CSRF derivation differs from cookies.go's: update this fuzz target")
	}
	h := env.Server.Handler()
	n := 0

	for _, seed := range []string{
		"username=alice&password=" + url.QueryEscape(alicePassword), "username=&password=", "username=alice&password=x&username=bob",
		"username=%00%ff&password=%zz", "username=" + strings.Repeat("a", 300) + "&password=x", "password=" + strings.Repeat("p", 2000),
		"code=123456", "code=000000&code=111111", "code=ABCD-EFGH-JK", "code=abcdefghjk", "code=%20123%20456%20", "code=" + strings.Repeat("9", 100),
		"code=12345\u0666", "id=lr-other&code=123456", "csrf=&code=1", "decision=allow", "",
	} {
		f.Add(uint8(0), seed, true)
		f.Add(uint8(1), seed, true)
		f.Add(uint8(1), seed, false)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string, live bool) {
		path := "/ui/login/password"
		if which%2 == 1 {
			path = "/ui/login/factor"
		}
		req := httptest.NewRequest(http.MethodPost, path, nil)
		if live {
			lr := *template
			n++
			lr.ID = fmt.Sprintf("%s-f%d", template.ID, n)
			if err := env.Server.Store.CreateLoginRequest(ctx, &lr); err != nil {
				t.Fatal(err)
			}
			body += "&" + url.Values{"id": {lr.ID}, "csrf": {csrf(lr.ID)}}.Encode()
			req.AddCookie(&http.Cookie{Name: browserCookie, Value: browser})
		}
		req.Body = httpBody(body)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s %q: status %d: %s", path, body, rec.Code, rec.Body)
		}
	})
}

// FuzzAuthorizationCodeGrant sends arbitrary authorization_code requests (real codes and
// verifiers among the seeds) to the token endpoint, as a confidential and as a public client:
// the answer is JSON below 500, an error with its code and description, never a panic.
func FuzzAuthorizationCodeGrant(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	web := env.CreateClient(store.Client{Type: store.ClientWeb, RedirectURIs: []string{callback}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	spa := env.CreateClient(store.Client{Type: store.ClientSPA, AuthMethod: store.AuthNone, RedirectURIs: []string{callback}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	env.CreateUserWithPassword("alice", alicePassword)
	b := env.NewBrowser()
	for i, c := range []testenv.Client{web, spa, web} {
		p, verifier := fuzzAuthorize(f, b, c, nil)
		if p.HasForm("/ui/login/password") {
			p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": alicePassword})
		}
		if p.Location == nil {
			f.Fatalf("sign-in %d: %s", i, p.Text())
		}
		code := p.Location.Query().Get("code")
		public := c.AuthMethod == store.AuthNone
		f.Add("code="+code+"&redirect_uri="+url.QueryEscape(callback)+"&code_verifier="+verifier, public)
		f.Add("code="+code+"&redirect_uri="+url.QueryEscape(callback), public)
		f.Add("code="+code+"&code="+code+"&code_verifier="+verifier+"&code_verifier=x", !public)
	}
	for _, seed := range []string{
		"", "code=", "code=sgn_ac_%00&redirect_uri=%zz", "code=x&redirect_uri=http://127.0.0.1:9/callback/../x&code_verifier=" + strings.Repeat("a", 129),
		"code=x&code_verifier=" + strings.Repeat("~", 43), "code=x&grant_type=refresh_token", "code=x&client_id=other&client_secret=y",
		"code=eyJhbGciOiJub25lIn0.e30.&scope=openid%20admin&resource=https://evil", "code=" + strings.Repeat("A", 5000),
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	h := env.Server.Handler()
	f.Fuzz(func(t *testing.T, body string, public bool) {
		body = "grant_type=authorization_code&" + body
		if public {
			body += "&client_id=" + spa.ID
		}
		req := httptest.NewRequest(http.MethodPost, "/oauth/v2/token", httpBody(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if !public {
			req.SetBasicAuth(web.ID, web.Secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%q: status %d: %s", body, rec.Code, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%q: non-JSON answer %q", body, rec.Body)
		}
		if rec.Code >= 400 && (m["error"] == nil || m["error_description"] == nil) {
			t.Fatalf("%q: error without code or description: %s", body, rec.Body)
		}
	})
}
