// Package interop checks Signet with clients we did not write, configured the way our users'
// applications configure them: golang.org/x/oauth2, coreos/go-oidc and zitadel/oidc's profile and
// resource-server packages.
package interop

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	zclient "github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/profile"
	"github.com/zitadel/oidc/v3/pkg/client/rs"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestClientCredentialsWithXOAuth2 gets tokens the way most Go services do, with the default
// AuthStyleAutoDetect (Basic first) and with the secret in the body, including a client ID that
// needs URL-encoding inside Basic (RFC 6749 §2.3.1).
func TestClientCredentialsWithXOAuth2(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, tc := range []struct {
		name   string
		id     string
		method string
		style  oauth2.AuthStyle
	}{
		{"auto-detect", "", store.AuthSecretBasic, oauth2.AuthStyleAutoDetect},
		{"basic", "", store.AuthSecretBasic, oauth2.AuthStyleInHeader},
		{"post", "", store.AuthSecretPost, oauth2.AuthStyleInParams},
		{"id needing url-encoding", "reports:svc@example.com/1", store.AuthSecretBasic, oauth2.AuthStyleInHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := env.CreateClient(store.Client{ID: tc.id, AuthMethod: tc.method})
			cc := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: env.URL + "/oauth/v2/token", AuthStyle: tc.style, Scopes: []string{"read"}}
			tok, err := cc.Token(ctx(t))
			if err != nil {
				t.Fatalf("x/oauth2 could not get a token: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.AccessToken == "" || time.Until(tok.Expiry) < 10*time.Minute {
				t.Fatalf("unexpected token %+v", tok)
			}
			bad := cc
			bad.ClientSecret = "wrong"
			_, err = bad.Token(ctx(t))
			var re *oauth2.RetrieveError
			if err == nil || !asRetrieve(err, &re) || re.ErrorCode != "invalid_client" || !strings.Contains(re.ErrorDescription, "secret") {
				t.Fatalf("wrong secret: want invalid_client naming the secret, got %v", err)
			}
		})
	}
}

func asRetrieve(err error, re **oauth2.RetrieveError) bool {
	r, ok := err.(*oauth2.RetrieveError)
	if ok {
		*re = r
	}
	return ok
}

// TestGoOIDCVerifiesAccessTokens discovers the issuer with go-oidc (exact issuer match) and verifies
// JWT access tokens of every signing algorithm against the published JWKS.
func TestGoOIDCVerifiesAccessTokens(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	provider, err := gooidc.NewProvider(ctx(t), env.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			c := env.CreateClient(store.Client{AccessTokenAlg: alg})
			cc := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: provider.Endpoint().TokenURL}
			tok, err := cc.Token(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			// Discovery is cached by go-oidc, so re-discover to see algorithms added after start.
			p, err := gooidc.NewProvider(ctx(t), env.URL)
			if err != nil {
				t.Fatal(err)
			}
			v := p.Verifier(&gooidc.Config{ClientID: c.ID, SupportedSigningAlgs: []string{alg}})
			idt, err := v.Verify(ctx(t), tok.AccessToken)
			if err != nil {
				t.Fatalf("go-oidc rejected a %s access token: %v", alg, err)
			}
			if idt.Subject != c.ID || idt.Issuer != env.URL {
				t.Fatalf("claims: sub %q iss %q", idt.Subject, idt.Issuer)
			}
		})
	}
}

// TestCachedJWKSVerifiesTokensAfterRotation is a resource server that fetches the JWKS once and
// caches it (go-oidc's remote key set): after `signet keys rotate` the tokens Signet signs verify
// against the cached set, without a second fetch, because the key that becomes active was
// published as the next key before the rotation; tokens signed before it still verify.
func TestCachedJWKSVerifiesTokensAfterRotation(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.CreateClient(store.Client{AccessTokenAlg: "ES256"})
	cc := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: env.URL + "/oauth/v2/token"}
	provider, err := gooidc.NewProvider(ctx(t), env.URL)
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKS == "" {
		t.Fatalf("discovery names no jwks_uri: %v", err)
	}
	fetches := &countingTransport{}
	keySet := gooidc.NewRemoteKeySet(gooidc.ClientContext(context.Background(), &http.Client{Transport: fetches}), meta.JWKS)
	verify := func(when string) {
		t.Helper()
		tok, err := cc.Token(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keySet.VerifySignature(ctx(t), tok.AccessToken); err != nil {
			t.Fatalf("%s: the cached key set rejects a token: %v", when, err)
		}
	}
	verify("before rotation")
	before, err := cc.Token(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Keys.Rotate(ctx(t), "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	verify("after rotation")
	if _, err := keySet.VerifySignature(ctx(t), before.AccessToken); err != nil {
		t.Fatalf("a token signed before the rotation must still verify: %v", err)
	}
	if n := fetches.n.Load(); n != 1 {
		t.Fatalf("the key set was fetched %d times; once must do, the next key being published before it signs", n)
	}
}

// countingTransport counts the requests a client sends.
type countingTransport struct{ n atomic.Int64 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestZitadelServiceAccountKeyFile is the setup of an app that gets 401 from other providers: a
// service account key file gets a token with zitadel's JWT profile, and the resource server
// introspects with a service-account key (JWTProfile), an application key file and a secret.
func TestZitadelServiceAccountKeyFile(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	sa := env.CreateServiceAccount("ci-bot", "introspector")
	kf, path := env.KeyFile(store.KindServiceAccount, sa.ID, "RS256", time.Time{})
	api := env.CreateClient(store.Client{Name: "billing-api"})

	ts, err := profile.NewJWTProfileTokenSourceFromKeyFile(ctx(t), env.URL, path, []string{"openid", "urn:zitadel:iam:org:project:id:" + api.ID + ":aud"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatalf("JWT profile grant with a service account key file: %v", err)
	}

	t.Run("introspect with service account key (JWT profile)", func(t *testing.T) {
		server, err := rs.NewResourceServerJWTProfile(ctx(t), env.URL, kf.UserID, kf.KeyID, []byte(kf.Key))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Introspect[*zoidc.IntrospectionResponse](ctx(t), server, tok.AccessToken)
		if err != nil {
			t.Fatalf("introspection with a service account key: %v", err)
		}
		if !resp.Active || resp.Subject != sa.ID {
			t.Fatalf("want active token of %s, got %+v", sa.ID, resp)
		}
	})
	t.Run("introspect with client secret", func(t *testing.T) {
		server, err := rs.NewResourceServerClientCredentials(ctx(t), env.URL, api.ID, api.Secret)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Introspect[*zoidc.IntrospectionResponse](ctx(t), server, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Active || resp.Subject != sa.ID || !contains(resp.Audience, api.ID) {
			t.Fatalf("billing-api is in the audience and must see the token active: %+v", resp)
		}
	})
	t.Run("introspect with application key file", func(t *testing.T) {
		app := env.CreateClient(store.Client{AuthMethod: store.AuthPrivateKeyJWT, Roles: []string{"admin"}})
		_, appPath := env.KeyFile(store.KindClient, app.ID, "RS256", time.Time{})
		server, err := rs.NewResourceServerFromKeyFile(ctx(t), env.URL, appPath)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rs.Introspect[*zoidc.IntrospectionResponse](ctx(t), server, tok.AccessToken)
		if err != nil {
			t.Fatalf("introspection with an application key file: %v", err)
		}
		if !resp.Active {
			t.Fatalf("a client with introspect:any must see the token active: %+v", resp)
		}
	})
	t.Run("service account key file in NewResourceServerFromKeyFile names the fix", func(t *testing.T) {
		server, err := rs.NewResourceServerFromKeyFile(ctx(t), env.URL, path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rs.Introspect[*zoidc.IntrospectionResponse](ctx(t), server, tok.AccessToken)
		if err == nil || !strings.Contains(err.Error(), sa.ID) || !strings.Contains(err.Error(), "userId") {
			t.Fatalf("the refusal must name the expected iss/sub (%s) and the key file field: %v", sa.ID, err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPrivateKeyJWTClientCredentials: a client authenticating with an application key file gets a
// token (RFC 7523 client authentication, the assertion built by zitadel/oidc's signer).
func TestPrivateKeyJWTClientCredentials(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	app := env.CreateClient(store.Client{AuthMethod: store.AuthPrivateKeyJWT})
	kf, _ := env.KeyFile(store.KindClient, app.ID, "ES256", time.Time{})
	signer, err := zclient.NewSignerFromPrivateKeyByte([]byte(kf.Key), kf.KeyID)
	if err != nil {
		t.Fatal(err)
	}
	assertion, err := zclient.SignedJWTProfileAssertion(kf.ClientID, []string{env.URL}, time.Hour, signer)
	if err != nil {
		t.Fatal(err)
	}
	code, body := env.PostForm("/oauth/v2/token", map[string]string{
		"grant_type": "client_credentials", "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
	}, "", "")
	if code != 200 || body["access_token"] == nil {
		t.Fatalf("private_key_jwt client credentials: %d %v", code, body)
	}
}
