package oauth_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"

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
