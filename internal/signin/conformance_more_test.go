package signin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/signet-id/signet/internal/testenv"
)

// The Basic OP modules TestOIDCBasicOP leaves to this file: the refresh token, the scope modules,
// the reordered happy flow and the POSTed authorization request.
func TestOIDCBasicOPMore(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	alice := env.CreateUserWithPassword("alice", certPassword)
	c := newCert(t, env, alice, nil)

	// OIDCCRefreshToken: offline_access (with prompt=consent, as the suite sends it) gives a refresh
	// token of visible ASCII; refreshing answers 200 JSON no-store Bearer with a new ID token whose
	// iss, sub, aud, auth_time and azp are the first one's and whose iat is not; another client's
	// refresh token is invalid_grant.
	t.Run("OIDCCRefreshToken", func(t *testing.T) {
		b := env.NewBrowser()
		p := b.Open(c.authURL(map[string]string{"scope": "openid offline_access", "prompt": "consent"}))
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": certPassword})
		// prompt=consent asks even for a first-party client: allow.
		p = b.Submit(p, "/ui/login/consent", map[string]string{"decision": "allow"})
		q := callbackQuery(t, p)
		first := c.redeem(t, q.Get("code"), false)
		rt, _ := first.body["refresh_token"].(string)
		if first.status != 200 || rt == "" || strings.ContainsFunc(rt, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("code with offline_access: %d %v", first.status, first.body)
		}
		firstClaims := verifiedClaims(t, c, first.body["id_token"].(string))
		resp, body := postToken(t, env, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"openid offline_access"}})
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "no-store") || !strings.EqualFold(body["token_type"].(string), "bearer") {
			t.Fatalf("refresh: %d %v %v", resp.StatusCode, resp.Header, body)
		}
		second := verifiedClaims(t, c, body["id_token"].(string))
		for _, k := range []string{"iss", "sub", "aud", "auth_time", "azp"} {
			if !sameJSON(firstClaims[k], second[k]) {
				t.Errorf("refreshed ID token %s %v, first %v", k, second[k], firstClaims[k])
			}
		}
		if sameJSON(firstClaims["iat"], second["iat"]) && sameJSON(firstClaims["jti"], second["jti"]) {
			t.Errorf("the refreshed ID token is the first one again")
		}
		other := newCert(t, env, alice, nil)
		q2, _ := other.signIn(t, env.NewBrowser(), map[string]string{"scope": "openid offline_access"})
		otherRT, _ := other.redeem(t, q2.Get("code"), false).body["refresh_token"].(string)
		resp, body = postToken(t, env, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {otherRT}})
		if resp.StatusCode != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("another client's refresh token: %d %v", resp.StatusCode, body)
		}
	})

	// OIDCCScopeProfile, OIDCCScopeEmail: userinfo carries the scope's claims (email_verified a
	// boolean), the ID token neither name nor email.
	for module, want := range map[string][]string{"OIDCCScopeProfile": {"name", "preferred_username"}, "OIDCCScopeEmail": {"email", "email_verified"}} {
		t.Run(module, func(t *testing.T) {
			scope := "openid profile"
			if module == "OIDCCScopeEmail" {
				scope = "openid email"
			}
			q, _ := c.signIn(t, env.NewBrowser(), map[string]string{"scope": scope})
			at, claims := c.tokens(t, q)
			if _, ok := claims["name"]; ok {
				t.Errorf("ID token carries name: %v", claims)
			}
			if _, ok := claims["email"]; ok {
				t.Errorf("ID token carries email: %v", claims)
			}
			info := userinfo(t, env, at)
			for _, k := range want {
				if _, ok := info[k]; !ok {
					t.Errorf("userinfo lacks %s: %v", k, info)
				}
			}
			if v, ok := info["email_verified"]; ok {
				if _, isBool := v.(bool); !isBool {
					t.Errorf("email_verified %v is not a boolean", v)
				}
			}
		})
	}

	// OIDCCAlternateHappyFlow: scope "email openid" and the parameters in reverse order work.
	t.Run("OIDCCAlternateHappyFlow", func(t *testing.T) {
		u, _ := url.Parse(c.authURL(map[string]string{"scope": "email openid"}))
		q := u.Query()
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(q.Get(k)))
		}
		u.RawQuery = strings.Join(parts, "&")
		b := env.NewBrowser()
		p := b.Open(u.String())
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": certPassword})
		if _, claims := c.tokens(t, callbackQuery(t, p)); claims["sub"] != alice.ID {
			t.Fatalf("claims %v", claims)
		}
	})

	// OIDCCEnsurePostRequestSucceeds: the whole authorization request as a form POST.
	t.Run("OIDCCEnsurePostRequestSucceeds", func(t *testing.T) {
		u, _ := url.Parse(c.authURL(nil))
		b := env.NewBrowser()
		p := b.Post(u.Scheme+"://"+u.Host+u.Path, u.Query())
		p = b.Submit(p, "/ui/login/password", map[string]string{"username": "alice", "password": certPassword})
		q := callbackQuery(t, p)
		if q.Get("state") != "st" {
			t.Fatalf("callback %v", q)
		}
		if _, claims := c.tokens(t, q); claims["nonce"] != "n-xxxxxxxx" {
			t.Fatalf("claims %v", claims)
		}
	})
}

// TestOIDCConfigOP is the Config OP plan's one module, OIDCCDiscoveryEndpointVerification, on a
// default server: every check it fails on, and the ones it warns about that Signet meets.
// (https is the deployment's choice: the test server is plain http on loopback.)
func TestOIDCConfigOP(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	resp, err := http.Get(env.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	list := func(k string) []string {
		raw, ok := doc[k].([]any)
		if !ok {
			t.Errorf("%s is not an array: %v", k, doc[k])
		}
		var out []string
		for _, v := range raw {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	if doc["issuer"] != env.URL {
		t.Errorf("issuer %v, want the discovery URL's base %s", doc["issuer"], env.URL)
	}
	if !slices.Contains(list("response_types_supported"), "code") {
		t.Error("response_types_supported lacks code")
	}
	if st := list("subject_types_supported"); !slices.Contains(st, "public") {
		t.Errorf("subject_types_supported %v", st)
	}
	if algs := list("id_token_signing_alg_values_supported"); !slices.Contains(algs, "RS256") || slices.Contains(algs, "none") {
		t.Errorf("id_token_signing_alg_values_supported %v: must contain RS256 and never none", algs)
	}
	for k, v := range doc {
		if strings.HasSuffix(k, "_endpoint") || k == "jwks_uri" {
			if u, err := url.Parse(v.(string)); err != nil || !strings.HasPrefix(v.(string), env.URL+"/") || u.Host == "" {
				t.Errorf("%s = %v: not a URL on the issuer", k, v)
			}
		}
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if g := list("grant_types_supported"); len(g) == 0 {
		t.Error("grant_types_supported is empty")
	}
	scopes := list("scopes_supported")
	if !slices.Contains(scopes, "openid") {
		t.Errorf("scopes_supported %v lacks openid", scopes)
	}
	for _, s := range scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			t.Errorf("scope %q is not an RFC 6749 scope-token", s)
		}
	}
	list("claims_supported")
	if m := list("code_challenge_methods_supported"); !slices.Contains(m, "S256") {
		t.Errorf("code_challenge_methods_supported %v", m)
	}
	if m := list("token_endpoint_auth_methods_supported"); !slices.Contains(m, "client_secret_basic") || !slices.Contains(m, "client_secret_post") {
		t.Errorf("token_endpoint_auth_methods_supported %v", m)
	}
	for _, k := range []string{"claims_parameter_supported", "request_parameter_supported", "request_uri_parameter_supported"} {
		if _, ok := doc[k].(bool); !ok {
			t.Errorf("%s = %v: must be a boolean", k, doc[k])
		}
	}

	// The JWKS: public keys only, each with a distinct kid, every one parsable.
	var set jose.JSONWebKeySet
	kresp, err := http.Get(doc["jwks_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	defer kresp.Body.Close()
	if err := json.NewDecoder(kresp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	kids := map[string]bool{}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("JWKS key %s is not a valid public key", k.KeyID)
		}
		if k.KeyID == "" || kids[k.KeyID] {
			t.Errorf("JWKS kid %q is empty or repeated", k.KeyID)
		}
		kids[k.KeyID] = true
	}
	var rsa bool
	for _, k := range set.Keys {
		rsa = rsa || k.Algorithm == "RS256"
	}
	if !rsa {
		t.Error("no RS256 key is published, though discovery lists RS256")
	}
}

func verifiedClaims(t *testing.T, c *cert, raw string) map[string]any {
	t.Helper()
	idt, err := c.r.provider.Verifier(&oidc.Config{ClientID: c.r.client.ID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	idt.Claims(&claims)
	return claims
}

func postToken(t *testing.T, env *testenv.Env, c *cert, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/oauth/v2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.r.client.ID), url.QueryEscape(c.r.client.Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

func userinfo(t *testing.T, env *testenv.Env, at string) map[string]any {
	t.Helper()
	src := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: at, TokenType: "Bearer"})
	req, _ := http.NewRequest(http.MethodGet, env.URL+"/oidc/v1/userinfo", nil)
	tok, _ := src.Token()
	tok.SetAuthHeader(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("userinfo %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var info map[string]any
	json.NewDecoder(resp.Body).Decode(&info)
	return info
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
