package oauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// sign makes a JWS over claims with the key file's private key (or with alg/key overrides).
func sign(t *testing.T, kf *keys.KeyFile, claims map[string]any) string {
	t.Helper()
	signer, alg, err := keys.ParsePrivateKeyPEM([]byte(kf.Key))
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", kf.KeyID)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: signer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsigned builds a JWS by hand with any header: alg none or HMAC keyed with the public key PEM.
func unsigned(header, claims map[string]any, hmacKey []byte) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	input := enc(header) + "." + enc(claims)
	if hmacKey == nil {
		return input + "."
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestRefusalsSayWhatToFix checks every refusal the issue lists: status, code, and a description
// that names the cause and the fix.
func TestRefusalsSayWhatToFix(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	api := env.CreateClient(store.Client{Name: "billing-api"})
	ccOnly := env.CreateClient(store.Client{GrantTypes: []string{}})
	keyClient := env.CreateClient(store.Client{AuthMethod: store.AuthPrivateKeyJWT})
	appKey, _ := env.KeyFile(store.KindClient, keyClient.ID, "ES256", time.Time{})
	sa := env.CreateServiceAccount("ci-bot", "introspector")
	saKey, _ := env.KeyFile(store.KindServiceAccount, sa.ID, "RS256", time.Time{})
	expiredKey, _ := env.KeyFile(store.KindServiceAccount, sa.ID, "RS256", time.Now().Add(-time.Hour))
	revokedKey, _ := env.KeyFile(store.KindServiceAccount, sa.ID, "ES256", time.Time{})
	if err := env.Server.Store.RevokePublicKey(t.Context(), revokedKey.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	// A key for a client whose method is a secret: the reverse mismatch.
	_ = appKey
	secretClientKey, _ := env.KeyFile(store.KindClient, api.ID, "ES256", time.Time{})
	_, pubPEM, _ := keys.GenerateKeyPair("RS256")

	now := time.Now()
	claims := func(sub string, mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": sub, "sub": sub, "aud": []string{env.URL}, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": secrets.NewID()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	assertion := func(raw string) map[string]string {
		return map[string]string{"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": raw}
	}
	introspect := func(raw string) map[string]string {
		return map[string]string{"token": "x", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": raw}
	}
	replayed := sign(t, saKey, claims(sa.ID, nil))
	if code, body := env.PostForm("/oauth/v2/introspect", introspect(replayed), "", ""); code != 200 {
		t.Fatalf("first use of an assertion must work: %d %v", code, body)
	}

	cases := []struct {
		name     string
		path     string
		form     map[string]string
		id, pw   string
		status   int
		code     string
		contains []string
	}{
		{"no credentials", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, "", "", 401, "invalid_client", []string{"no client authentication", "HTTP Basic"}},
		{"unknown client", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, "nobody", "x", 401, "invalid_client", []string{`unknown client "nobody"`}},
		{"wrong secret", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, api.ID, "wrong", 401, "invalid_client", []string{"secret", api.ID}},
		{"secret sent to a key client", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, keyClient.ID, "whatever", 401, "invalid_client", []string{"private_key_jwt", "client_assertion"}},
		{"assertion sent for a secret client", "/oauth/v2/token", assertion(sign(t, secretClientKey, claims(api.ID, nil))), "", "", 401, "invalid_client", []string{"client_secret_basic", "not private_key_jwt"}},
		{"wrong aud names the expected issuer", "/oauth/v2/introspect", introspect(sign(t, saKey, claims(sa.ID, func(c map[string]any) { c["aud"] = "https://elsewhere.example" }))), "", "", 401, "invalid_client", []string{"https://elsewhere.example", `expected the issuer "` + env.URL + `"`}},
		{"empty iss and sub name the owner", "/oauth/v2/introspect", introspect(sign(t, saKey, claims("", nil))), "", "", 401, "invalid_client", []string{`service account "ci-bot"`, sa.ID, "userId"}},
		{"wrong sub", "/oauth/v2/introspect", introspect(sign(t, saKey, claims(sa.ID, func(c map[string]any) { c["sub"] = "someone" }))), "", "", 401, "invalid_client", []string{`sub is "someone"`, sa.ID}},
		{"unknown kid", "/oauth/v2/introspect", introspect(sign(t, &keys.KeyFile{KeyID: "nope", Key: saKey.Key}, claims(sa.ID, nil))), "", "", 401, "invalid_client", []string{`kid "nope" is not a registered key`}},
		{"revoked key", "/oauth/v2/introspect", introspect(sign(t, revokedKey, claims(sa.ID, nil))), "", "", 401, "invalid_client", []string{revokedKey.KeyID, "revoked", "new key file"}},
		{"expired key", "/oauth/v2/introspect", introspect(sign(t, expiredKey, claims(sa.ID, nil))), "", "", 401, "invalid_client", []string{expiredKey.KeyID, "expired", "ci-bot"}},
		{"expired assertion", "/oauth/v2/introspect", introspect(sign(t, saKey, claims(sa.ID, func(c map[string]any) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(-90 * time.Minute).Unix()
		}))), "", "", 401, "invalid_client", []string{"expired at", "server time"}},
		{"not-yet-valid assertion", "/oauth/v2/introspect", introspect(sign(t, saKey, claims(sa.ID, func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }))), "", "", 401, "invalid_client", []string{"not valid before", "clock"}},
		{"lifetime too long", "/oauth/v2/introspect", introspect(sign(t, saKey, claims(sa.ID, func(c map[string]any) { c["exp"] = now.Add(3 * time.Hour).Unix() }))), "", "", 401, "invalid_client", []string{"lifetime", "at most"}},
		{"replayed jti", "/oauth/v2/introspect", introspect(replayed), "", "", 401, "invalid_client", []string{"already used", "fresh jti"}},
		{"bad signature", "/oauth/v2/introspect", introspect(sign(t, &keys.KeyFile{KeyID: saKey.KeyID, Key: expiredKey.Key}, claims(sa.ID, nil))), "", "", 401, "invalid_client", []string{"signature does not verify", saKey.KeyID}},
		{"alg none", "/oauth/v2/introspect", introspect(unsigned(map[string]any{"alg": "none", "kid": saKey.KeyID}, claims(sa.ID, nil), nil)), "", "", 401, "invalid_client", []string{`alg "none"`}},
		{"HMAC with the public key", "/oauth/v2/introspect", introspect(unsigned(map[string]any{"alg": "HS256", "kid": saKey.KeyID}, claims(sa.ID, nil), pubPEM)), "", "", 401, "invalid_client", []string{`alg "HS256"`}},
		{"grant not allowed", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, ccOnly.ID, ccOnly.Secret, 400, "unauthorized_client", []string{"may not use grant_type client_credentials", "signet client update " + ccOnly.ID + " --add-grant client_credentials"}},
		{"unsupported grant", "/oauth/v2/token", map[string]string{"grant_type": "password"}, api.ID, api.Secret, 400, "unsupported_grant_type", []string{`"password"`, "client_credentials"}},
		{"missing grant_type", "/oauth/v2/token", map[string]string{}, api.ID, api.Secret, 400, "invalid_request", []string{"grant_type is missing"}},
		{"audience not allowed", "/oauth/v2/token", map[string]string{"grant_type": "client_credentials", "audience": "other-api"}, api.ID, api.Secret, 400, "invalid_target", []string{`"other-api"`, "signet client update"}},
		{"introspect without token", "/oauth/v2/introspect", map[string]string{}, api.ID, api.Secret, 400, "invalid_request", []string{"token is missing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := env.PostForm(tc.path, tc.form, tc.id, tc.pw)
			desc, _ := body["error_description"].(string)
			if code != tc.status || body["error"] != tc.code {
				t.Fatalf("want %d %s, got %d %v", tc.status, tc.code, code, body)
			}
			for _, s := range tc.contains {
				if !strings.Contains(desc, s) {
					t.Errorf("description %q lacks %q", desc, s)
				}
			}
		})
	}

	t.Run("malformed form body", func(t *testing.T) {
		resp := env.Do("/oauth/v2/token", nil, func(r *http.Request) {
			r.Body = http.NoBody
			r.Header.Set("Content-Type", "application/json")
		})
		defer resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("JSON body: want 400, got %d", resp.StatusCode)
		}
		req, _ := http.NewRequest("POST", env.URL+"/oauth/v2/token", strings.NewReader("grant_type=%zz"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		json.NewDecoder(r2.Body).Decode(&body)
		r2.Body.Close()
		if r2.StatusCode != 400 || body["error"] != "invalid_request" || !strings.Contains(body["error_description"], "percent-encoding") {
			t.Fatalf("bad escape: got %d %v", r2.StatusCode, body)
		}
	})
	t.Run("Basic refusal carries WWW-Authenticate", func(t *testing.T) {
		resp := env.Do("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, func(r *http.Request) { r.SetBasicAuth(api.ID, "wrong") })
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers: %v", resp.Header)
		}
	})
}
