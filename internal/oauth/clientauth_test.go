package oauth_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestClientAuthenticationSaysWhatToFix: every way the one client authenticator (token,
// introspection and revocation endpoints) refuses a caller, each with its own description, status
// and challenge, and the methods it accepts.
func TestClientAuthenticationSaysWhatToFix(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := context.Background()
	api := env.CreateClient(store.Client{Name: "billing-api"})
	post := env.CreateClient(store.Client{AuthMethod: store.AuthSecretPost})
	keyClient := env.CreateClient(store.Client{AuthMethod: store.AuthPrivateKeyJWT})
	spa := env.CreateClient(store.Client{Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE}})
	off := env.CreateClient(store.Client{})
	off.Disabled = true
	if err := env.Server.Store.UpdateClient(ctx, off.Client); err != nil {
		t.Fatal(err)
	}
	keyOnly := env.CreateServiceAccount("key-only", "introspector")
	withSecret := env.CreateServiceAccount("with-secret", "introspector")
	saSecret, salt, hash := env.Server.Secrets.NewSecret()
	withSecret.SecretSalt, withSecret.SecretHash = salt, hash
	if err := env.Server.Store.UpdateServiceAccount(ctx, withSecret); err != nil {
		t.Fatal(err)
	}
	retired := env.CreateServiceAccount("retired", "introspector")
	retiredSecret, salt, hash := env.Server.Secrets.NewSecret()
	retired.SecretSalt, retired.SecretHash, retired.Disabled = salt, hash, true
	if err := env.Server.Store.UpdateServiceAccount(ctx, retired); err != nil {
		t.Fatal(err)
	}
	for _, c := range []store.Change{{Kind: store.ChangeClient, Key: off.ID}, {Kind: store.ChangeServiceAccount, Key: withSecret.ID}, {Kind: store.ChangeServiceAccount, Key: retired.ID}} {
		env.Server.Dir.Invalidate(c)
	}
	dana := env.CreateUser("dana")
	userToken := env.Token(store.KindUser, dana.ID, api.Client, "read")
	accountToken := env.Token(store.KindServiceAccount, keyOnly.ID, api.Client)

	basic := func(raw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(raw)) }
	cc := func(extra map[string]string) map[string]string {
		f := map[string]string{"grant_type": "client_credentials"}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	const token, introspect = "/oauth/v2/token", "/oauth/v2/introspect"
	bearerRefusal := "the Bearer token is not an active access token of a service account"
	for _, tc := range []struct {
		name      string
		path      string
		authz     string
		form      map[string]string
		status    int
		code      string
		frag      string
		challenge string // the WWW-Authenticate header, when one is due
	}{
		{"two methods at once", token, basic(api.ID + ":" + api.Secret), cc(map[string]string{"client_secret": api.Secret}), 400, "invalid_request",
			"use one client authentication method per request; this request sent the Authorization header and client_secret", ""},
		{"secret and assertion", token, "", cc(map[string]string{"client_id": post.ID, "client_secret": post.Secret, "client_assertion": "x"}), 400, "invalid_request", "client_secret and client_assertion", ""},
		{"Basic not base64", token, "Basic !!!", cc(nil), 401, "invalid_client", "malformed HTTP Basic credentials", `Basic realm="signet"`},
		{"Basic without a colon", token, basic("just-an-id"), cc(nil), 401, "invalid_client", "malformed HTTP Basic credentials", `Basic realm="signet"`},
		{"Basic id not urlencoded", token, basic("%zz:secret"), cc(nil), 401, "invalid_client", "malformed HTTP Basic credentials", `Basic realm="signet"`},
		{"Basic secret not urlencoded", token, basic(api.ID + ":%zz"), cc(nil), 401, "invalid_client", "malformed HTTP Basic credentials", `Basic realm="signet"`},
		{"Basic with an empty id", token, basic(":secret"), cc(nil), 401, "invalid_client", "malformed HTTP Basic credentials", `Basic realm="signet"`},
		{"Basic and another client_id", token, basic(api.ID + ":" + api.Secret), cc(map[string]string{"client_id": post.ID}), 400, "invalid_request",
			`client_id "` + post.ID + `" in the body differs from "` + api.ID + `" in the Authorization header`, ""},
		{"Basic of an unknown client", token, basic("nobody:x"), cc(nil), 401, "invalid_client", `unknown client "nobody"`, `Basic realm="signet"`},
		{"Basic with a wrong secret", token, basic(api.ID + ":wrong"), cc(nil), 401, "invalid_client", `the client secret for "` + api.ID + `" is wrong`, `Basic realm="signet"`},
		{"Basic of a disabled client", token, basic(off.ID + ":" + off.Secret), cc(nil), 401, "invalid_client", `client "` + off.ID + `" is disabled`, `Basic realm="signet"`},
		{"Basic of a disabled service account", introspect, basic(retired.ID + ":" + retiredSecret), map[string]string{"token": "x"}, 401, "invalid_client", `service account "retired" is disabled`, `Basic realm="signet"`},
		{"Basic of a key client", token, basic(keyClient.ID + ":x"), cc(nil), 401, "invalid_client", "it authenticates with private_key_jwt", `Basic realm="signet"`},
		{"Basic of a public client", token, basic(spa.ID + ":x"), cc(nil), 401, "invalid_client", "is a public client and has no secret", `Basic realm="signet"`},
		{"Basic of a service account without a secret", introspect, basic(keyOnly.ID + ":x"), map[string]string{"token": "x"}, 401, "invalid_client", `service account "key-only" has no secret`, `Basic realm="signet"`},
		{"Bearer at the token endpoint", token, "Bearer " + accountToken, cc(nil), 401, "invalid_client", "a Bearer token cannot authenticate a client here", ""},
		{"another scheme", token, "Digest username=x", cc(nil), 401, "invalid_client", `unsupported Authorization scheme "Digest"`, ""},
		{"a long scheme is cut", token, strings.Repeat("X", 30) + " y", cc(nil), 401, "invalid_client", `unsupported Authorization scheme "` + strings.Repeat("X", 20) + `"`, ""},
		{"client_secret without client_id", token, "", cc(map[string]string{"client_secret": "x"}), 400, "invalid_request", "client_secret was sent without client_id", ""},
		{"client_secret_post of an unknown client", token, "", cc(map[string]string{"client_id": "nobody", "client_secret": "x"}), 401, "invalid_client", `unknown client "nobody"`, ""},
		{"wrong assertion type", token, "", cc(map[string]string{"client_assertion_type": "urn:x", "client_assertion": "x"}), 400, "invalid_request", `client_assertion_type must be "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"`, ""},
		{"assertion type without assertion", token, "", cc(map[string]string{"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}), 400, "invalid_request", "client_assertion_type was sent without client_assertion", ""},
		{"only the ID of an unknown client", token, "", cc(map[string]string{"client_id": "nobody"}), 401, "invalid_client", `unknown client "nobody"`, ""},
		{"only the ID of a disabled client", token, "", cc(map[string]string{"client_id": off.ID}), 401, "invalid_client", `client "` + off.ID + `" is disabled`, ""},
		{"only the ID of a confidential client", token, "", cc(map[string]string{"client_id": api.ID}), 401, "invalid_client", "is confidential and sent only its ID; authenticate with its secret (HTTP Basic or client_secret_post)", ""},
		{"only the ID of a key client", token, "", cc(map[string]string{"client_id": keyClient.ID}), 401, "invalid_client", "is confidential and sent only its ID; authenticate with a client_assertion signed with its key file", ""},
		{"only the ID of a service account", introspect, "", map[string]string{"token": "x", "client_id": keyOnly.ID}, 401, "invalid_client", "is confidential and sent only its ID; authenticate with a client_assertion signed with its key file", ""},
		{"a public client at introspection", introspect, "", map[string]string{"token": "x", "client_id": spa.ID}, 401, "invalid_client", `client "` + spa.ID + `" is a public client; this endpoint needs a confidential client's credentials`, ""},
		{"nothing at the token endpoint", token, "", cc(nil), 401, "invalid_client", "a client_assertion (private_key_jwt)", `Basic realm="signet"`},
		{"nothing at introspection names Bearer", introspect, "", map[string]string{"token": "x"}, 401, "invalid_client", "or a Bearer token of a service account with the signet:introspect permission", `Basic realm="signet"`},
		{"Bearer of a user", introspect, "Bearer " + userToken, map[string]string{"token": "x"}, 401, "invalid_token", bearerRefusal, `Bearer error="invalid_token"`},
		{"Bearer of garbage", introspect, "Bearer garbage", map[string]string{"token": "x"}, 401, "invalid_token", bearerRefusal, `Bearer error="invalid_token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := env.Do(tc.path, tc.form, func(r *http.Request) {
				if tc.authz != "" {
					r.Header.Set("Authorization", tc.authz)
				}
			})
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body := string(b)
			if resp.StatusCode != tc.status || !strings.Contains(body, `"error":"`+tc.code+`"`) || !strings.Contains(body, jsonEscape(tc.frag)) {
				t.Fatalf("want %d %s containing %q, got %d %s", tc.status, tc.code, tc.frag, resp.StatusCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}

	for name, c := range map[string]struct {
		path, authz string
		form        map[string]string
	}{
		"HTTP Basic":                    {token, basic(api.ID + ":" + api.Secret), cc(nil)},
		"client_secret_post":            {token, "", cc(map[string]string{"client_id": post.ID, "client_secret": post.Secret})},
		"Basic with the same client_id": {token, basic(api.ID + ":" + api.Secret), cc(map[string]string{"client_id": api.ID})},
		"a service account's secret":    {introspect, basic(withSecret.ID + ":" + saSecret), map[string]string{"token": "x"}},
		"a service account's Bearer":    {introspect, "Bearer " + accountToken, map[string]string{"token": "x"}},
	} {
		resp := env.Do(c.path, c.form, func(r *http.Request) {
			if c.authz != "" {
				r.Header.Set("Authorization", c.authz)
			}
		})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s must authenticate: %d %s", name, resp.StatusCode, b)
		}
	}
}

// jsonEscape is s as it appears inside a JSON string.
func jsonEscape(s string) string {
	return strings.NewReplacer(`"`, `\"`).Replace(s)
}
