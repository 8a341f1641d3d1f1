package signin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// The OpenID Foundation's Basic OP plan (oidcc-basic-certification-test-plan) as a client sees it:
// each subtest is named after the suite's module and checks what the module's conditions check
// (see docs/conformance.md). Like the suite, these requests send scope openid, state and nonce,
// and no PKCE, and authenticate with client_secret_basic unless the module says otherwise.

// cert is the suite's static client and test user on a running Signet.
type cert struct {
	env  *testenv.Env
	r    *rp
	user *store.User
}

const certPassword = "correct horse battery"

func newCert(t *testing.T, env *testenv.Env, user *store.User, edit func(*store.Client)) *cert {
	t.Helper()
	r := newRP(t, env, edit)
	r.conf.Scopes = []string{oidc.ScopeOpenID}
	return &cert{env: env, r: r, user: user}
}

// authURL is an authorization request with the suite's parameters (state, nonce) and extras;
// a value of "" removes a parameter.
func (c *cert) authURL(extra map[string]string) string {
	u, _ := url.Parse(c.r.conf.AuthCodeURL("st"))
	q := u.Query()
	q.Set("state", "st")
	q.Set("nonce", "n-"+strings.Repeat("x", 8))
	for k, v := range extra {
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// signIn opens an authorization request in b, posts the password when the login page is shown,
// and returns the callback query and whether the login page was shown.
func (c *cert) signIn(t *testing.T, b *testenv.Browser, extra map[string]string) (url.Values, bool) {
	t.Helper()
	p := b.Open(c.authURL(extra))
	shown := p.HasForm("/ui/login/password")
	if shown {
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": c.user.Username, "password": certPassword})
	}
	return callbackQuery(t, p), shown
}

type tokenAnswer struct {
	status      int
	contentType string
	body        map[string]any
}

// redeem exchanges a code at the token endpoint with client_secret_basic (the suite URL-encodes
// the credentials before base64), or in the body when post is set.
func (c *cert) redeem(t *testing.T, code string, post bool, more ...string) tokenAnswer {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}}
	for i := 0; i+1 < len(more); i += 2 {
		form.Set(more[i], more[i+1])
	}
	if post {
		form.Set("client_id", c.r.client.ID)
		form.Set("client_secret", c.r.client.Secret)
	}
	req, _ := http.NewRequest(http.MethodPost, c.env.URL+"/oauth/v2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !post {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.r.client.ID)+":"+url.QueryEscape(c.r.client.Secret))))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := tokenAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a.body); err != nil {
		t.Fatalf("token endpoint answered %d non-JSON %q", resp.StatusCode, b)
	}
	return a
}

// tokens redeems a code that must work and returns the access token and the verified ID token's claims.
func (c *cert) tokens(t *testing.T, q url.Values) (string, map[string]any) {
	t.Helper()
	a := c.redeem(t, q.Get("code"), false)
	if a.status != http.StatusOK {
		t.Fatalf("token endpoint: %d %v", a.status, a.body)
	}
	at, _ := a.body["access_token"].(string)
	if at == "" || !strings.EqualFold(a.body["token_type"].(string), "bearer") {
		t.Fatalf("token response %v", a.body)
	}
	if exp, ok := a.body["expires_in"].(float64); !ok || exp <= 0 || exp > 31536000 {
		t.Fatalf("expires_in %v", a.body["expires_in"])
	}
	raw, _ := a.body["id_token"].(string)
	idt, err := c.r.provider.Verifier(&oidc.Config{ClientID: c.r.client.ID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims map[string]any
	idt.Claims(&claims)
	return at, claims
}

// ageSession moves the browser session's authentication back by d, as if it was that old.
func (c *cert) ageSession(t *testing.T, sid string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	s, err := c.env.Server.Store.GetBrowserSession(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.env.Server.Store.ReauthBrowserSession(ctx, s.ID, s.SecretHash, s.AuthTime.Add(-d), s.AMR, s.MFAAt); err != nil {
		t.Fatal(err)
	}
}

// checkErrorRedirect applies the suite's generic checks to an error redirect and returns the error.
func checkErrorRedirect(t *testing.T, q url.Values, state string) string {
	t.Helper()
	if q.Get("state") != state || q.Get("error") == "" || q.Has("code") {
		t.Fatalf("error redirect %v: want error, state %q and no code", q, state)
	}
	for k := range q {
		if !slices.Contains([]string{"error", "error_description", "error_uri", "state", "session_state", "iss"}, k) {
			t.Errorf("error redirect carries %q", k)
		}
	}
	for _, r := range q.Get("error_description") {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			t.Errorf("error_description has %q: %q", r, q.Get("error_description"))
		}
	}
	return q.Get("error")
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

func TestOIDCBasicOP(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", certPassword)
	c := newCert(t, env, alice, nil)

	t.Run("OIDCCServerTest", func(t *testing.T) {
		q, shown := c.signIn(t, env.NewBrowser(), nil)
		if !shown || q.Get("state") != "st" {
			t.Fatalf("login page shown %v, callback %v", shown, q)
		}
		if code := strings.TrimPrefix(q.Get("code"), "sgn_ac_"); len(code) < 22 {
			t.Errorf("code %q: the suite wants at least 128 bits", q.Get("code"))
		}
		var disc struct {
			Issuer string `json:"issuer"`
		}
		resp, err := http.Get(env.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&disc)
		resp.Body.Close()
		_, claims := c.tokens(t, q)
		if claims["iss"] != disc.Issuer || q.Get("iss") != disc.Issuer {
			t.Fatalf("iss %v (callback %q), discovery issuer %q", claims["iss"], q.Get("iss"), disc.Issuer)
		}
		// The suite's list, plus signet_grant: the code's grant, so that a replayed code's revocation
		// reaches the ID token and whatever is exchanged from it (internal/tokens). The suite only
		// warns about it (EnsureIdTokenDoesNotContainNonRequestedClaims is a WARNING);
		// docs/conformance.md says so.
		allowed := strings.Fields("iss sub aud exp iat auth_time nonce acr amr azp at_hash c_hash nbf jti sid s_hash txn signet_grant")
		for k := range claims {
			if !slices.Contains(allowed, k) {
				t.Errorf("with scope openid the ID token carries %q (%v)", k, claims[k])
			}
		}
		if claims["sub"] != alice.ID || claims["nonce"] != "n-xxxxxxxx" {
			t.Fatalf("claims %v", claims)
		}
	})

	t.Run("OIDCCServerTestClientSecretPost", func(t *testing.T) {
		post := newCert(t, env, alice, func(cl *store.Client) { cl.AuthMethod = store.AuthSecretPost })
		q, _ := post.signIn(t, env.NewBrowser(), nil)
		if a := post.redeem(t, q.Get("code"), true); a.status != http.StatusOK || a.body["id_token"] == nil {
			t.Fatalf("client_secret_post: %d %v", a.status, a.body)
		}
	})

	t.Run("OIDCCAuthCodeReuse", func(t *testing.T) {
		q, _ := c.signIn(t, env.NewBrowser(), nil)
		at, _ := c.tokens(t, q)
		again := c.redeem(t, q.Get("code"), false)
		if again.status != http.StatusBadRequest || !strings.HasPrefix(again.contentType, "application/json") || again.body["error"] != "invalid_grant" {
			t.Fatalf("code reused: %d %s %v", again.status, again.contentType, again.body)
		}
		status, intro := env.PostForm("/oauth/v2/introspect", map[string]string{"token": at}, c.r.client.ID, c.r.client.Secret)
		if status != http.StatusOK || intro["active"] != false {
			t.Fatalf("the first access token after the code was reused: %d %v", status, intro)
		}
		if code, _ := env.Bearer(http.MethodGet, "/oidc/v1/userinfo", at, nil); code < 400 || code > 499 {
			t.Fatalf("userinfo with the revoked token: %d", code)
		}
	})

	t.Run("OIDCCEnsureRequestWithoutNonceSucceedsForCodeFlow", func(t *testing.T) {
		q, _ := c.signIn(t, env.NewBrowser(), map[string]string{"nonce": ""})
		if _, claims := c.tokens(t, q); claims["nonce"] != nil {
			t.Fatalf("nonce %v in the ID token of a request without one", claims["nonce"])
		}
	})

	t.Run("OIDCCPromptNoneNotLoggedIn", func(t *testing.T) {
		state := strings.Repeat("aB3-_.~x", 16)
		p := env.NewBrowser().Open(c.authURL(map[string]string{"prompt": "none", "state": state}))
		if got := checkErrorRedirect(t, callbackQuery(t, p), state); !slices.Contains([]string{"login_required", "interaction_required", "account_selection_required", "consent_required"}, got) {
			t.Fatalf("error %q", got)
		}
	})

	t.Run("OIDCCPromptNoneLoggedIn", func(t *testing.T) {
		b := env.NewBrowser()
		q, _ := c.signIn(t, b, nil)
		_, first := c.tokens(t, q)
		q, shown := c.signIn(t, b, map[string]string{"prompt": "none"})
		_, second := c.tokens(t, q)
		if shown || second["sub"] != first["sub"] || num(second["auth_time"]) != num(first["auth_time"]) {
			t.Fatalf("prompt=none in a session: %v then %v", first, second)
		}
	})

	t.Run("OIDCCMaxAge1", func(t *testing.T) {
		b := env.NewBrowser()
		q, _ := c.signIn(t, b, nil)
		_, first := c.tokens(t, q)
		c.ageSession(t, first["sid"].(string), 2*time.Second+time.Second) // the suite waits 2 s
		q, _ = c.signIn(t, b, map[string]string{"prompt": "none"})
		_, aged := c.tokens(t, q)
		q, shown := c.signIn(t, b, map[string]string{"max_age": "1"})
		_, second := c.tokens(t, q)
		if !shown {
			t.Fatal("max_age=1 with an older sign-in did not show the login page")
		}
		if _, ok := second["auth_time"]; !ok || num(second["auth_time"]) <= num(aged["auth_time"]) || time.Since(time.Unix(num(second["auth_time"]), 0)) > time.Minute {
			t.Fatalf("auth_time %v after max_age=1, %v before", second["auth_time"], aged["auth_time"])
		}
	})

	t.Run("OIDCCMaxAge10000", func(t *testing.T) {
		b := env.NewBrowser()
		q, _ := c.signIn(t, b, map[string]string{"max_age": "15000"})
		_, first := c.tokens(t, q)
		q, shown := c.signIn(t, b, map[string]string{"max_age": "10000"})
		_, second := c.tokens(t, q)
		if shown || first["auth_time"] == nil || num(second["auth_time"]) != num(first["auth_time"]) {
			t.Fatalf("max_age=10000: login shown %v, auth_time %v then %v", shown, first["auth_time"], second["auth_time"])
		}
	})

	t.Run("OIDCCPromptLogin", func(t *testing.T) {
		b := env.NewBrowser()
		q, _ := c.signIn(t, b, nil)
		_, first := c.tokens(t, q)
		c.ageSession(t, first["sid"].(string), 2*time.Second) // the suite waits 1 s
		q, _ = c.signIn(t, b, map[string]string{"prompt": "none"})
		_, aged := c.tokens(t, q)
		q, shown := c.signIn(t, b, map[string]string{"prompt": "login"})
		_, second := c.tokens(t, q)
		if !shown || num(second["auth_time"]) <= num(aged["auth_time"]) {
			t.Fatalf("prompt=login: login shown %v, auth_time %v then %v", shown, aged["auth_time"], second["auth_time"])
		}
	})

	t.Run("OIDCCIdTokenHint", func(t *testing.T) {
		b := env.NewBrowser()
		q, _ := c.signIn(t, b, nil)
		a := c.redeem(t, q.Get("code"), false)
		_, first := c.tokens(t, mustCode(t, c, b))
		q, shown := c.signIn(t, b, map[string]string{"prompt": "none", "id_token_hint": a.body["id_token"].(string)})
		_, second := c.tokens(t, q)
		if shown || second["sub"] != alice.ID || num(second["auth_time"]) != num(first["auth_time"]) {
			t.Fatalf("id_token_hint with prompt=none: %v", second)
		}
	})

	t.Run("OIDCCLoginHint", func(t *testing.T) {
		p := env.NewBrowser().Open(c.authURL(map[string]string{"login_hint": "alice"}))
		if got := p.Form(t, "/ui/login/password").Values.Get("username"); got != "alice" {
			t.Fatalf("login_hint=alice: username field %q", got)
		}
	})

	t.Run("OIDCCUnsignedRequestObjectSupportedCorrectlyOrRejectedAsUnsupported", func(t *testing.T) {
		obj := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"state":"st","client_id":"`+c.r.client.ID+`"}`)) + "."
		p := env.NewBrowser().Open(c.authURL(map[string]string{"request": obj}))
		if got := checkErrorRedirect(t, callbackQuery(t, p), "st"); got != "request_not_supported" {
			t.Fatalf("request object: error %q", got)
		}
	})

	t.Run("OIDCCEnsureRequestObjectWithRedirectUri", func(t *testing.T) {
		obj := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{}`)) + "."
		p := env.NewBrowser().Open(c.authURL(map[string]string{"request": obj, "redirect_uri": callback + "/elsewhere"}))
		if p.Location != nil || p.Status != http.StatusBadRequest {
			t.Fatalf("request object with an unregistered redirect_uri: %d, redirect %v", p.Status, p.Location)
		}
	})

	t.Run("OIDCCEnsureRegisteredRedirectUri", func(t *testing.T) {
		p := env.NewBrowser().Open(c.authURL(map[string]string{"redirect_uri": callback + "/c5Yq2kFh"}))
		if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("unregistered redirect_uri: %d %s, redirect %v", p.Status, p.Header.Get("Content-Type"), p.Location)
		}
	})

	t.Run("OIDCCResponseTypeMissing", func(t *testing.T) {
		p := env.NewBrowser().Open(c.authURL(map[string]string{"response_type": ""}))
		if p.Location != nil {
			if got := checkErrorRedirect(t, callbackQuery(t, p), "st"); got != "invalid_request" && got != "unsupported_response_type" {
				t.Fatalf("error %q", got)
			}
		} else if p.Status != http.StatusBadRequest {
			t.Fatalf("no response_type: %d %s", p.Status, p.Text())
		}
	})

	t.Run("userinfo", func(t *testing.T) {
		q, _ := c.signIn(t, env.NewBrowser(), nil)
		at, claims := c.tokens(t, q)
		for _, tc := range []struct {
			module string
			req    func() *http.Request
		}{
			{"OIDCCUserInfoGet", func() *http.Request {
				r, _ := http.NewRequest(http.MethodGet, env.URL+"/oidc/v1/userinfo", nil)
				r.Header.Set("Authorization", "Bearer "+at)
				return r
			}},
			{"OIDCCUserInfoPostHeader", func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/v1/userinfo", nil)
				r.Header.Set("Authorization", "Bearer "+at)
				return r
			}},
			{"OIDCCUserInfoPostBody", func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/v1/userinfo", strings.NewReader(url.Values{"access_token": {at}}.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}},
		} {
			t.Run(tc.module, func(t *testing.T) {
				resp, err := http.DefaultClient.Do(tc.req())
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var info map[string]any
				json.NewDecoder(resp.Body).Decode(&info)
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || info["sub"] != claims["sub"] {
					t.Fatalf("%d %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), info)
				}
			})
		}
	})

	// Parameters the OP must accept (and may ignore) in an otherwise ordinary request.
	for module, extra := range map[string]map[string]string{
		"OIDCCDisplayPage":   {"display": "page"},
		"OIDCCDisplayPopup":  {"display": "popup"},
		"OIDCCUiLocales":     {"ui_locales": "se"},
		"OIDCCClaimsLocales": {"claims_locales": "se"},
		"OIDCCEnsureRequestWithUnknownParameterSucceeds": {"extra": "foobar"},
		"OIDCCEnsureRequestWithAcrValuesSucceeds":        {"acr_values": "1 2"},
		"OIDCCClaimsEssential":                           {"claims": `{"userinfo":{"name":{"essential":true}}}`},
		"OIDCCEnsureRequestWithValidPkceSucceeds":        {"code_challenge": oauth2.S256ChallengeFromVerifier("v-" + strings.Repeat("k", 50)), "code_challenge_method": "S256"},
	} {
		t.Run(module, func(t *testing.T) {
			q, _ := c.signIn(t, env.NewBrowser(), extra)
			if extra["code_challenge"] != "" {
				if a := c.redeem(t, q.Get("code"), false, "code_verifier", "v-"+strings.Repeat("k", 50)); a.status != http.StatusOK || a.body["id_token"] == nil {
					t.Fatalf("code_verifier with an S256 challenge: %d %v", a.status, a.body)
				}
				return
			}
			if _, claims := c.tokens(t, q); claims["sub"] != alice.ID {
				t.Fatalf("claims %v", claims)
			}
		})
	}
}

// mustCode gets another code silently in b's session.
func mustCode(t *testing.T, c *cert, b *testenv.Browser) url.Values {
	t.Helper()
	q, shown := c.signIn(t, b, map[string]string{"prompt": "none"})
	if shown {
		t.Fatal("a signed-in browser was shown the login page")
	}
	return q
}
