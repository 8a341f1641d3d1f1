package signin_test

import (
	"context"
	"encoding/base32"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/mfa"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// Shared by the *_attack_test.go files: an attacker's view of a running Signet.

const (
	alicePassword = "correct horse battery"
	sessionCookie = "__Host-signet-session"
	browserCookie = "__Host-signet-browser"
)

// attackEnv is a provider on db ("": SQLite) with a web client (rp) and alice.
type attackEnv struct {
	*testenv.Env
	rp    *rp
	alice *store.User
	gw    testenv.Client // may introspect any token
	agent *store.ServiceAccount
	api   testenv.Client
}

func newAttackEnv(t *testing.T, db string, edit func(*store.Client)) *attackEnv {
	t.Helper()
	env := testenv.Start(t, testenv.Options{DB: db})
	withExchange := func(c *store.Client) {
		c.GrantTypes = append(c.GrantTypes, grantTokenExchange)
		if edit != nil {
			edit(c)
		}
	}
	x := &attackEnv{Env: env, rp: newRP(t, env, withExchange), alice: env.CreateUserWithPassword("alice", alicePassword)}
	x.gw = env.CreateClient(store.Client{Name: "gateway", Roles: []string{"introspect-any"}})
	// A rule lets a service account act for users through the client (delegation), so tokens
	// derived from a sign-in exist for logout and replay to reach.
	x.agent = env.CreateServiceAccount("agent")
	x.api = env.CreateClient(store.Client{Name: "api"})
	if err := env.Server.Policy.Put(context.Background(), exchange.Rule{Name: "agent-for-users", Mode: exchange.ModeDelegation,
		Actors: exchange.Selector{ServiceAccounts: []string{"agent"}}, Subjects: exchange.Subjects{Users: []string{"*"}},
		Clients: []string{x.rp.client.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"openid", "profile", "email"}}); err != nil {
		t.Fatal(err)
	}
	return x
}

const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// delegate exchanges a subject token of the given type ("access_token" or "id_token") for a
// delegated token for the api, with the agent as actor.
func (x *attackEnv) delegate(t *testing.T, subject, typ string) (int, map[string]any) {
	t.Helper()
	actor := x.Token(store.KindServiceAccount, x.agent.ID, x.rp.client.Client)
	return x.PostAs(x.rp.client, "/oauth/v2/token", map[string]string{"grant_type": grantTokenExchange,
		"subject_token": subject, "subject_token_type": "urn:ietf:params:oauth:token-type:" + typ,
		"actor_token": actor, "actor_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": x.api.ID})
}

// authURL is the client's authorization request with a fresh PKCE verifier.
func (x *attackEnv) authURL(state string, opts ...oauth2.AuthCodeOption) (string, string) {
	v := oauth2.GenerateVerifier()
	return x.rp.conf.AuthCodeURL(state, append(opts, oauth2.S256ChallengeOption(v))...), v
}

// signIn signs alice in in b and returns the code and verifier.
func (x *attackEnv) signIn(t *testing.T, b *testenv.Browser, opts ...oauth2.AuthCodeOption) (string, string) {
	t.Helper()
	q, v := x.rp.signIn(t, b, "alice", alicePassword, opts...)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), v
}

// redeem posts the authorization_code grant as client c.
func (x *attackEnv) redeem(c testenv.Client, code, verifier string) (int, map[string]any) {
	f := map[string]string{"grant_type": "authorization_code", "code": code, "redirect_uri": callback}
	if verifier != "" {
		f["code_verifier"] = verifier
	}
	return x.PostAs(c, "/oauth/v2/token", f)
}

// tokens redeems a code and fails unless it gives access, refresh and ID tokens.
func (x *attackEnv) tokens(t *testing.T, code, verifier string) (at, rt, idt string) {
	t.Helper()
	status, body := x.redeem(x.rp.client, code, verifier)
	if status != 200 {
		t.Fatalf("redemption refused: %d %v", status, body)
	}
	at, _ = body["access_token"].(string)
	rt, _ = body["refresh_token"].(string)
	idt, _ = body["id_token"].(string)
	if at == "" || rt == "" || idt == "" {
		t.Fatalf("redemption gave %v", body)
	}
	return at, rt, idt
}

// active introspects as the gateway.
func (x *attackEnv) active(t *testing.T, raw string) bool {
	t.Helper()
	status, body := x.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, x.gw.ID, x.gw.Secret)
	if status != 200 {
		t.Fatalf("introspection answered %d %v", status, body)
	}
	return body["active"] == true
}

// activeFor introspects as client c (an ID token introspects only for its audience).
func (x *attackEnv) activeFor(t *testing.T, c testenv.Client, raw string) bool {
	t.Helper()
	status, body := x.PostAs(c, "/oauth/v2/introspect", map[string]string{"token": raw})
	if status != 200 {
		t.Fatalf("introspection answered %d %v", status, body)
	}
	return body["active"] == true
}

// refresh posts the refresh grant as the client.
func (x *attackEnv) refresh(rt string) (int, map[string]any) {
	return x.PostAs(x.rp.client, "/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": rt})
}

// cookie is the value of a cookie the browser holds for the issuer ("" when none).
func cookie(b *testenv.Browser, name string) string {
	u, _ := url.Parse(b.Origin + "/")
	for _, c := range b.HTTP.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie plants a cookie in the browser, as an attacker with a foothold (or a shared computer) could.
func setCookie(b *testenv.Browser, name, value string) {
	u, _ := url.Parse(b.Origin + "/")
	b.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true}})
}

// raw sends one request with b's cookies without following any redirect, and returns the response
// (body closed) with its Location exactly as sent.
func raw(t testing.TB, b *testenv.Browser, method, rawURL string, form url.Values) *http.Response {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = b.Origin + rawURL
	}
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequest(method, rawURL, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequest(method, rawURL, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: b.HTTP.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// signedInAccount reports whether b's session opens the account page (not sent to sign in).
func signedInAccount(t *testing.T, b *testenv.Browser) bool {
	t.Helper()
	resp := raw(t, b, http.MethodGet, "/ui/account", nil)
	return resp.StatusCode == 200
}

// enrolTOTP completes the TOTP enrolment page p shows in b (reading the secret the page prints)
// and returns the secret and the page after the code was accepted.
func enrolTOTP(t testing.TB, b *testenv.Browser, p *testenv.Page) ([]byte, *testenv.Page) {
	t.Helper()
	i := strings.Index(p.Body, `<code class="secret">`)
	if i < 0 {
		t.Fatalf("no TOTP secret on page %s: %s", p.URL, p.Text())
	}
	rest := p.Body[i+len(`<code class="secret">`):]
	enc := strings.ReplaceAll(rest[:strings.Index(rest, "<")], " ", "")
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(enc))
	if err != nil {
		t.Fatalf("secret %q: %v", enc, err)
	}
	p = b.Submit(p, "enrol", map[string]string{"code": mfa.Code(secret, time.Now())})
	if p.Status != 200 {
		t.Fatalf("enrolment refused: %d %s", p.Status, p.Text())
	}
	return secret, p
}

// browserWith is a new browser holding only the given session cookie value.
func (x *attackEnv) browserWith(value string) *testenv.Browser {
	b := x.NewBrowser()
	setCookie(b, sessionCookie, value)
	return b
}

func withACR(v string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("acr_values", v) }

func httpBody(s string) io.ReadCloser { return io.NopCloser(strings.NewReader(s)) }
