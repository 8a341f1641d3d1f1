package oauth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestConcurrentRefreshOnTwoReplicas: two replicas on one PostgreSQL database receive the same
// refresh token at once. Exactly one wins; the losers are refused as a lost race and revoke nothing,
// so the winner's new tokens work on both replicas.
func TestConcurrentRefreshOnTwoReplicas(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	key := make([]byte, 32)
	rand.Read(key)
	opt := testenv.Options{DB: dsn, MasterKey: base64.StdEncoding.EncodeToString(key), Issuer: "http://signet.replicas.test"}
	a := testenv.Start(t, opt)
	b := testenv.Start(t, opt)
	ctx := context.Background()
	api := a.CreateClient(store.Client{Name: "api"})
	app := a.CreateClient(store.Client{Name: "app", GrantTypes: []string{grantTE, "refresh_token"}})
	dana := a.CreateUser("dana")
	agent := a.CreateServiceAccount("agent")
	if err := a.Server.Policy.Put(ctx, exchange.Rule{Name: "offline", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{app.ID}, Audiences: []string{api.ID}, Scopes: []string{"read"}, AllowRefresh: true}); err != nil {
		t.Fatal(err)
	}
	code, body := a.PostForm("/oauth/v2/token", map[string]string{"grant_type": grantTE, "subject_token": a.Token(store.KindUser, dana.ID, app.Client, "read"),
		"subject_token_type": typeAT, "actor_token": a.Token(store.KindServiceAccount, agent.ID, app.Client, "read"), "actor_token_type": typeAT,
		"audience": api.ID, "requested_token_type": typeRT}, app.ID, app.Secret)
	if code != 200 {
		t.Fatalf("delegation: %d %v", code, body)
	}
	rt := body["refresh_token"].(string)

	const n = 8
	type answer struct {
		code int
		body map[string]any
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		replica := a
		if i%2 == 1 {
			replica = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, body := replica.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": rt}, app.ID, app.Secret)
			answers <- answer{code, body}
		}()
	}
	close(start)
	wg.Wait()
	close(answers)
	var winners []map[string]any
	for x := range answers {
		switch {
		case x.code == 200:
			winners = append(winners, x.body)
		case x.code != 400 || !strings.Contains(x.body["error_description"].(string), "concurrent request"):
			t.Fatalf("a loser must be refused as a lost race, not as reuse: %d %v", x.code, x.body)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent refreshes on two replicas won; exactly one must", len(winners), n)
	}
	for name, env := range map[string]*testenv.Env{"a": a, "b": b} {
		_, info := env.PostForm("/oauth/v2/introspect", map[string]string{"token": winners[0]["access_token"].(string)}, api.ID, api.Secret)
		if info["active"] != true {
			t.Fatalf("replica %s: the winner's access token is dead on arrival: %v", name, info)
		}
	}
	if code, body := b.PostForm("/oauth/v2/token", map[string]string{"grant_type": "refresh_token", "refresh_token": winners[0]["refresh_token"].(string)}, app.ID, app.Secret); code != 200 {
		t.Fatalf("the winner's refresh token must work on the other replica: %d %v", code, body)
	}
}

// TestReplicasShareSessionEndKillSwitchAndRules: two replicas on one PostgreSQL database. An
// operator acting on replica a (ending a session, flipping the kill switch off and on, removing a
// rule) is honoured by replica b, which had the tokens, the switch and the rule cached.
func TestReplicasShareSessionEndKillSwitchAndRules(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	key := make([]byte, 32)
	rand.Read(key)
	opt := testenv.Options{DB: dsn, MasterKey: base64.StdEncoding.EncodeToString(key), Issuer: "http://signet.replicas.test"}
	a := testenv.Start(t, opt)
	b := testenv.Start(t, opt)
	ctx := context.Background()
	if err := a.Server.Store.PutRole(ctx, &store.Role{Name: "customer"}); err != nil {
		t.Fatal(err)
	}
	api := a.CreateClient(store.Client{Name: "api"})
	spa := a.CreateClient(store.Client{Name: "admin-spa", Type: store.ClientSPA, AuthMethod: store.AuthNone, GrantTypes: []string{grantTE}})
	sam := a.CreateUser("sam", "support")
	dana := a.CreateUser("dana", "customer")
	rule := exchange.Rule{Name: "support", Mode: exchange.ModeImpersonation, Actors: exchange.Selector{Roles: []string{"support"}},
		Subjects: exchange.Subjects{Roles: []string{"customer"}}, Clients: []string{spa.ID}, Audiences: []string{api.ID}, Scopes: []string{"read"}}
	if err := a.Server.Policy.Put(ctx, rule); err != nil {
		t.Fatal(err)
	}
	samToken := a.Token(store.KindUser, sam.ID, spa.Client, "read")
	impersonate := func(env *testenv.Env) (int, map[string]any) {
		return env.PostForm("/oauth/v2/token", map[string]string{"grant_type": grantTE, "client_id": spa.ID, "subject_token": dana.ID, "subject_token_type": typeUser,
			"actor_token": samToken, "actor_token_type": typeAT, "audience": api.ID}, "", "")
	}
	active := func(env *testenv.Env, raw string) bool {
		_, info := env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret)
		return info["active"] == true
	}
	mustImpersonate := func(t *testing.T, env *testenv.Env) string {
		t.Helper()
		code, body := impersonate(env)
		if code != 200 {
			t.Fatalf("impersonation: %d %v", code, body)
		}
		raw := body["access_token"].(string)
		if !active(b, raw) {
			t.Fatal("replica b must see a new impersonation token active")
		}
		return raw
	}

	t.Run("session end", func(t *testing.T) {
		raw := mustImpersonate(t, b)
		_, info := b.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, api.ID, api.Secret)
		session := info["signet_exchange"].(map[string]any)["session"].(string)
		if err := a.Server.Sessions.End(ctx, session, "ops", "done"); err != nil {
			t.Fatal(err)
		}
		took := testenv.Eventually(t, "replica b reports a token of the session ended on a inactive", func() bool { return !active(b, raw) })
		t.Logf("propagated in %v", took.Round(time.Millisecond))
	})
	t.Run("kill switch", func(t *testing.T) {
		raw := mustImpersonate(t, b)
		if err := a.Server.Sessions.Disable(ctx, "ops", "incident"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "replica b ends impersonation when a flips the kill switch", func() bool {
			code, body := impersonate(b)
			return !active(b, raw) && code == 403 && strings.Contains(body["error_description"].(string), "kill switch")
		})
		if err := a.Server.Sessions.Enable(ctx, "ops", "resolved"); err != nil {
			t.Fatal(err)
		}
		took := testenv.Eventually(t, "replica b allows impersonation again when a turns it back on", func() bool {
			code, body := impersonate(b)
			return code == 200 && active(b, body["access_token"].(string))
		})
		t.Logf("impersonation usable again after %v", took.Round(time.Millisecond))
		if active(b, raw) {
			t.Fatal("turning impersonation back on must not revive the tokens the switch ended")
		}
	})
	t.Run("rule change", func(t *testing.T) {
		mustImpersonate(t, b)
		if err := a.Server.Policy.Remove(ctx, rule.Name); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "replica b refuses impersonation once a removed the rule", func() bool {
			code, body := impersonate(b)
			return code == 400 && body["error"] == "unauthorized_client"
		})
	})
}
