package oauth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

const grantJWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// giveSecret gives a service account a secret for client_secret_basic, as `serviceaccount create
// --secret` does.
func giveSecret(t *testing.T, env *testenv.Env, sa *store.ServiceAccount) string {
	t.Helper()
	secret, salt, hash := env.Server.Secrets.NewSecret()
	sa.SecretSalt, sa.SecretHash = salt, hash
	if err := env.Server.Store.UpdateServiceAccount(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	env.Server.Watcher.Poll(context.Background())
	return secret
}

// setGrants replaces a service account's allow-list and applies the change at once, as the change
// feed would within --poll-interval.
func setGrants(t *testing.T, env *testenv.Env, sa *store.ServiceAccount, grants ...string) {
	t.Helper()
	sa.GrantTypes = grants
	if err := env.Server.Store.UpdateServiceAccount(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	env.Server.Watcher.Poll(context.Background())
}

func clientAssertion(t *testing.T, env *testenv.Env, kf *keys.KeyFile, form map[string]string) map[string]string {
	t.Helper()
	a, err := kf.Assertion(env.URL, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	form["client_assertion"] = a
	return form
}

func wantGrantRefused(t *testing.T, code int, body map[string]any, contains ...string) {
	t.Helper()
	desc, _ := body["error_description"].(string)
	if code != 400 || body["error"] != "unauthorized_client" {
		t.Fatalf("want 400 unauthorized_client, got %d %v", code, body)
	}
	for _, s := range contains {
		if !strings.Contains(desc, s) {
			t.Fatalf("description %q lacks %q", desc, s)
		}
	}
}

// TestServiceAccountTokenExchangeNeedsTheGrant: a service account's allow-list is enforced at the
// token endpoint like a client's, however it authenticates (secret or key-file client assertion).
// The default list has no token exchange; once the operator adds it, the same requests succeed.
func TestServiceAccountTokenExchangeNeedsTheGrant(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	sa := env.CreateServiceAccount("exchanger")
	secret := giveSecret(t, env, sa)
	kf, _ := env.KeyFile(store.KindServiceAccount, sa.ID, "ES256", time.Time{})

	code, body := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials", "scope": "read"}, sa.ID, secret)
	if code != 200 {
		t.Fatalf("client_credentials is in the default list: %d %v", code, body)
	}
	own := body["access_token"].(string)
	downscope := func() map[string]string {
		return map[string]string{"grant_type": grantTE, "subject_token": own, "subject_token_type": typeAT}
	}
	viaSecret := func() (int, map[string]any) { return env.PostForm("/oauth/v2/token", downscope(), sa.ID, secret) }
	viaKeyFile := func() (int, map[string]any) {
		return env.PostForm("/oauth/v2/token", clientAssertion(t, env, kf, downscope()), "", "")
	}

	for name, post := range map[string]func() (int, map[string]any){"client_secret": viaSecret, "key-file client assertion": viaKeyFile} {
		t.Run("refused through "+name, func(t *testing.T) {
			code, body := post()
			wantGrantRefused(t, code, body, `service account "exchanger" may not use grant_type `+grantTE,
				"its allowed grants are: client_credentials, "+grantJWT,
				"signet serviceaccount update "+sa.ID+" --add-grant "+grantTE)
		})
	}

	setGrants(t, env, sa, "client_credentials", grantJWT, grantTE)
	for name, post := range map[string]func() (int, map[string]any){"client_secret": viaSecret, "key-file client assertion": viaKeyFile} {
		t.Run("allowed through "+name+" once granted", func(t *testing.T) {
			if code, body := post(); code != 200 || body["issued_token_type"] != typeAT {
				t.Fatalf("%d %v", code, body)
			}
		})
	}

	// Removing client_credentials refuses it too: the list is the whole truth, not an addition.
	setGrants(t, env, sa, grantTE)
	code, body = env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, sa.ID, secret)
	wantGrantRefused(t, code, body, "may not use grant_type client_credentials", "its allowed grants are: "+grantTE)
}

// TestJWTBearerChecksTheAssertionOwnersList: the JWT bearer grant issues a token about the
// assertion's service account, so that account's list must hold jwt-bearer, whichever client (if
// any) authenticated the request.
func TestJWTBearerChecksTheAssertionOwnersList(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ccOnly := env.CreateServiceAccountWithGrants("cc-only", []string{"client_credentials"})
	ccKey, _ := env.KeyFile(store.KindServiceAccount, ccOnly.ID, "RS256", time.Time{})
	withDefaults := env.CreateServiceAccount("default-bot")
	defaultKey, _ := env.KeyFile(store.KindServiceAccount, withDefaults.ID, "RS256", time.Time{})
	relay := env.CreateClient(store.Client{Name: "relay", GrantTypes: []string{grantJWT}})

	bearer := func(kf *keys.KeyFile) map[string]string {
		a, err := kf.Assertion(env.URL, time.Now(), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"grant_type": grantJWT, "assertion": a}
	}
	refused := []string{`service account "cc-only" may not use grant_type ` + grantJWT, "its allowed grants are: client_credentials",
		"signet serviceaccount update " + ccOnly.ID + " --add-grant " + grantJWT}

	t.Run("without client authentication", func(t *testing.T) {
		code, body := env.PostForm("/oauth/v2/token", bearer(ccKey), "", "")
		wantGrantRefused(t, code, body, refused...)
	})
	t.Run("sent by a client allowed the grant", func(t *testing.T) {
		code, body := env.PostForm("/oauth/v2/token", bearer(ccKey), relay.ID, relay.Secret)
		wantGrantRefused(t, code, body, refused...)
	})
	t.Run("an account with the default list", func(t *testing.T) {
		for _, who := range []struct{ id, secret string }{{"", ""}, {relay.ID, relay.Secret}} {
			if code, body := env.PostForm("/oauth/v2/token", bearer(defaultKey), who.id, who.secret); code != 200 {
				t.Fatalf("client %q: %d %v", who.id, code, body)
			}
		}
	})
	t.Run("an account without any grant", func(t *testing.T) {
		setGrants(t, env, withDefaults)
		code, body := env.PostForm("/oauth/v2/token", bearer(defaultKey), "", "")
		wantGrantRefused(t, code, body, "its allowed grants are: (none)")
	})
}

// TestExchangeRefreshTokenNeedsTheAccountsRefreshGrant: a service account that asks a token
// exchange for a refresh token must be allowed refresh_token, as a client must.
func TestExchangeRefreshTokenNeedsTheAccountsRefreshGrant(t *testing.T) {
	x := newXEnv(t)
	caller := x.CreateServiceAccountWithGrants("offline-bot", []string{grantTE})
	secret := giveSecret(t, x.Env, caller)
	rule := exchange.Rule{Name: "bot-acts-offline", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{caller.ID}, Audiences: []string{x.api.ID}, Scopes: []string{"read"}, AllowRefresh: true,
		ActorTokenClients: []string{x.agentApp.ID}} // the agent's token was issued to agent-app
	if err := x.Server.Policy.Put(context.Background(), rule); err != nil {
		t.Fatal(err)
	}
	ask := func() (int, map[string]any) {
		return x.PostForm("/oauth/v2/token", map[string]string{"grant_type": grantTE, "subject_token": x.danaToken, "subject_token_type": typeAT,
			"actor_token": x.agentToken, "actor_token_type": typeAT, "audience": x.api.ID, "scope": "read", "requested_token_type": typeRT}, caller.ID, secret)
	}
	code, body := ask()
	wantGrantRefused(t, code, body, `service account "offline-bot" may not use grant_type refresh_token`, "--add-grant refresh_token")

	setGrants(t, x.Env, caller, grantTE, "refresh_token")
	if code, body := ask(); code != 200 || body["refresh_token"] == nil {
		t.Fatalf("once allowed: %d %v", code, body)
	}
}
