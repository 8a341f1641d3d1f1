package oauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

func token(t *testing.T, env *testenv.Env, c testenv.Client, form map[string]string) string {
	t.Helper()
	if form == nil {
		form = map[string]string{}
	}
	form["grant_type"] = "client_credentials"
	code, body := env.PostForm("/oauth/v2/token", form, c.ID, c.Secret)
	if code != 200 {
		t.Fatalf("token: %d %v", code, body)
	}
	return body["access_token"].(string)
}

func TestIntrospection(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	api := env.CreateClient(store.Client{Name: "api"})
	jwtApp := env.CreateClient(store.Client{Audiences: []string{api.ID}})
	opaqueApp := env.CreateClient(store.Client{Audiences: []string{api.ID}, AccessTokenFormat: store.FormatOpaque})
	other := env.CreateClient(store.Client{Name: "other"})

	for _, app := range []testenv.Client{jwtApp, opaqueApp} {
		t.Run(app.AccessTokenFormat, func(t *testing.T) {
			raw := token(t, env, app, map[string]string{"audience": api.ID, "scope": "read write"})
			if app.AccessTokenFormat == store.FormatOpaque && !strings.HasPrefix(raw, "sgn_at_") {
				t.Fatalf("opaque token %q lacks the sgn_at_ prefix", raw)
			}
			code, body := env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret)
			if code != 200 || body["active"] != true {
				t.Fatalf("audience member must see the token active: %d %v", code, body)
			}
			for k, want := range map[string]any{"sub": app.ID, "client_id": app.ID, "scope": "read write", "iss": env.URL, "token_type": "Bearer"} {
				if body[k] != want {
					t.Errorf("%s = %v, want %v", k, body[k], want)
				}
			}
			for _, k := range []string{"exp", "iat", "nbf", "jti", "aud"} {
				if body[k] == nil {
					t.Errorf("%s missing", k)
				}
			}
			// A client outside the audience without introspect:any learns nothing.
			code, body = env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, other.ID, other.Secret)
			if code != 200 || len(body) != 1 || body["active"] != false {
				t.Fatalf("non-audience client: want exactly {active:false}, got %d %v", code, body)
			}
			// The token's own client revokes it; it is inactive at once.
			code, _ = env.PostForm("/oauth/v2/revoke", map[string]string{"token": raw}, app.ID, app.Secret)
			if code != 200 {
				t.Fatalf("revoke: %d", code)
			}
			_, body = env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret)
			if len(body) != 1 || body["active"] != false {
				t.Fatalf("revoked token: want exactly {active:false}, got %v", body)
			}
		})
	}

	t.Run("garbage is exactly active:false", func(t *testing.T) {
		for _, raw := range []string{"garbage", "a.b.c", "sgn_at_" + strings.Repeat("A", 43), strings.Repeat("x", 5000)} {
			resp := env.Do("/oauth/v2/introspect", map[string]string{"token": raw}, func(r *http.Request) { r.SetBasicAuth(api.ID, api.Secret) })
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != `{"active":false}` {
				t.Fatalf("%q: got %d %s", raw[:min(len(raw), 20)], resp.StatusCode, b)
			}
		}
	})

	t.Run("service account bearer needs signet:introspect", func(t *testing.T) {
		sa := env.CreateServiceAccount("plain-bot")
		kf, _ := env.KeyFile(store.KindServiceAccount, sa.ID, "ES256", time.Time{})
		assertion, err := kf.Assertion(env.URL, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		code, body := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}, "", "")
		if code != 200 {
			t.Fatalf("jwt bearer: %d %v", code, body)
		}
		saToken := body["access_token"].(string)
		target := token(t, env, jwtApp, map[string]string{"audience": api.ID})
		bearer := func() (int, map[string]any) {
			resp := env.Do("/oauth/v2/introspect", map[string]string{"token": target}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+saToken) })
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			return resp.StatusCode, m
		}
		code, body = bearer()
		if code != 401 || !strings.Contains(body["error_description"].(string), "signet role grant introspector") {
			t.Fatalf("without permission: want 401 naming the grant command, got %d %v", code, body)
		}
		if err := env.Server.Store.GrantRole(context.Background(), store.KindServiceAccount, sa.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		env.Server.Watcher.Poll(context.Background())
		code, body = bearer()
		if code != 200 || body["active"] != true {
			t.Fatalf("with admin role (introspect + introspect:any): got %d %v", code, body)
		}
	})

	t.Run("RFC 9701 signed response", func(t *testing.T) {
		raw := token(t, env, jwtApp, map[string]string{"audience": api.ID})
		resp := env.Do("/oauth/v2/introspect", map[string]string{"token": raw}, func(r *http.Request) {
			r.SetBasicAuth(api.ID, api.Secret)
			r.Header.Set("Accept", "application/token-introspection+jwt")
		})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Type") != "application/token-introspection+jwt" {
			t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
		}
		jws, err := jose.ParseSigned(string(b), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		if typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string); typ != "token-introspection+jwt" {
			t.Fatalf("typ %q", typ)
		}
		var set jose.JSONWebKeySet
		jr, err := http.Get(env.URL + "/oauth/v2/keys")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(jr.Body).Decode(&set)
		jr.Body.Close()
		keys := set.Key(jws.Signatures[0].Protected.KeyID)
		if len(keys) != 1 {
			t.Fatalf("signing key not in JWKS")
		}
		payload, err := jws.Verify(keys[0])
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Iss                string         `json:"iss"`
			Aud                string         `json:"aud"`
			TokenIntrospection map[string]any `json:"token_introspection"`
		}
		json.Unmarshal(payload, &claims)
		if claims.Iss != env.URL || claims.Aud != api.ID || claims.TokenIntrospection["active"] != true {
			t.Fatalf("claims %+v", claims)
		}
	})
}

// TestReplicasShareRevocation runs two servers on one PostgreSQL database: a token that both have
// cached as active and that is revoked on one becomes inactive on the other.
func TestReplicasShareRevocation(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // replicas share the master key
	a := testenv.Start(t, testenv.Options{DB: dsn, MasterKey: key})
	b := testenv.Start(t, testenv.Options{DB: dsn, MasterKey: key, Issuer: a.URL})
	api := a.CreateClient(store.Client{Name: "api"})
	for _, format := range []string{store.FormatJWT, store.FormatOpaque} {
		t.Run(format, func(t *testing.T) {
			app := a.CreateClient(store.Client{Audiences: []string{api.ID}, AccessTokenFormat: format})
			raw := token(t, a, app, map[string]string{"audience": api.ID})
			for _, env := range []*testenv.Env{a, b} {
				if _, body := env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret); body["active"] != true {
					t.Fatalf("before revocation: %v", body)
				}
			}
			if code, _ := a.PostForm("/oauth/v2/revoke", map[string]string{"token": raw}, app.ID, app.Secret); code != 200 {
				t.Fatal("revoke failed")
			}
			took := testenv.Eventually(t, "replica b reports the revoked token inactive", func() bool {
				_, body := b.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret)
				return body["active"] == false
			})
			t.Logf("replica saw the revocation after %v", took.Round(time.Millisecond))
		})
	}
}

// TestReplicasShareClientAndKeyChanges: disabling a client or revoking a key on one replica is
// honoured by the other, which had both cached.
func TestReplicasShareClientAndKeyChanges(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	a := testenv.Start(t, testenv.Options{DB: dsn, MasterKey: key})
	b := testenv.Start(t, testenv.Options{DB: dsn, MasterKey: key, Issuer: a.URL})
	c := a.CreateClient(store.Client{})
	sa := a.CreateServiceAccount("replica-bot", "introspector")
	kf, _ := a.KeyFile(store.KindServiceAccount, sa.ID, "ES256", time.Time{})
	viaKey := func(env *testenv.Env) int {
		assertion, err := kf.Assertion(a.URL, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := env.PostForm("/oauth/v2/introspect", map[string]string{"token": "x", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}, "", "")
		return code
	}
	viaSecret := func(env *testenv.Env) int {
		code, _ := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, c.ID, c.Secret)
		return code
	}
	if viaSecret(b) != 200 || viaKey(b) != 200 {
		t.Fatal("replica b must accept both before the changes")
	}
	upd := *c.Client
	upd.Disabled = true
	if err := a.Server.Store.UpdateClient(context.Background(), &upd); err != nil {
		t.Fatal(err)
	}
	if err := a.Server.Store.RevokePublicKey(context.Background(), kf.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "replica b refuses the disabled client and the revoked key", func() bool {
		return viaSecret(b) == 401 && viaKey(b) == 401
	})
}
