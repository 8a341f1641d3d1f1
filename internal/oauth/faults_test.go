package oauth_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

// TestPostgresConnectionsKilledUnderLoad: two replicas serve exchanges and client-credentials
// requests while every one of their PostgreSQL connections is terminated, three times over. Every
// answer is a token or a 503 with Retry-After (never a 500, never a hang); afterwards both replicas
// serve without a restart, a revocation made at one reaches the other through the change feed,
// every token issued by exchange has its audit row, and the audit chain verifies.
func TestPostgresConnectionsKilledUnderLoad(t *testing.T) {
	b := make([]byte, 6)
	rand.Read(b)
	app := "signet-fault-" + hex.EncodeToString(b)
	dsn := testenv.PostgresDSN(t) + "&application_name=" + app
	keyBytes := make([]byte, 32)
	rand.Read(keyBytes)
	opt := testenv.Options{DB: dsn, MasterKey: base64.StdEncoding.EncodeToString(keyBytes), Issuer: "http://signet.faults.test"}
	r1, r2 := testenv.Start(t, opt), testenv.Start(t, opt)
	ctx := context.Background()
	api := r1.CreateClient(store.Client{Name: "api"})
	client := r1.CreateClient(store.Client{Name: "app", GrantTypes: []string{grantTE, "client_credentials"}, AccessTokenFormat: store.FormatOpaque})
	dana := r1.CreateUser("dana")
	agent := r1.CreateServiceAccount("agent")
	if err := r1.Server.Policy.Put(ctx, exchange.Rule{Name: "del", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{client.ID}, Audiences: []string{api.ID}, Scopes: []string{"read"}}); err != nil {
		t.Fatal(err)
	}
	danaTok := r1.Token(store.KindUser, dana.ID, client.Client, "read")
	agentTok := r1.Token(store.KindServiceAccount, agent.ID, client.Client, "read")

	admin, err := sql.Open("pgx", strings.Replace(dsn, "application_name="+app, "application_name=signet-fault-admin", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	killed := 0
	kill := func() {
		var n int
		if err := admin.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Error(err)
		}
		killed += n
	}

	httpc := &http.Client{Timeout: 10 * time.Second} // a hang is a failure
	post := func(env *testenv.Env, form url.Values) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest("POST", env.URL+"/oauth/v2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client.ID, client.Secret)
		resp, err := httpc.Do(req)
		if err != nil {
			t.Errorf("request failed (a hang or a dropped connection): %v", err)
			return 0, nil, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	var mu sync.Mutex
	var issued []string // exchanged access tokens
	statuses := map[int]int{}
	var wg sync.WaitGroup
	const perWorker = 150
	deadline := time.Now().Add(60 * time.Second)
	for w, env := range []*testenv.Env{r1, r2, r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				form := url.Values{"grant_type": {"client_credentials"}}
				if w%2 == 0 {
					form = url.Values{"grant_type": {grantTE}, "subject_token": {danaTok}, "subject_token_type": {typeAT},
						"actor_token": {agentTok}, "actor_token_type": {typeAT}, "audience": {api.ID}}
				}
				code, h, body := post(env, form)
				mu.Lock()
				statuses[code]++
				if code == 503 && h.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After: %v", body)
				}
				if code != 200 && code != 503 {
					t.Errorf("status %d during the outage: %v", code, body)
				}
				if code == 200 && w%2 == 0 {
					issued = append(issued, body["access_token"].(string))
				}
				mu.Unlock()
				if w == 0 && (i == 20 || i == 60 || i == 100) {
					kill()
				}
			}
		}()
	}
	wg.Wait()
	if killed == 0 {
		t.Fatal("no connection was terminated; the test proved nothing")
	}
	t.Logf("terminated %d connections; answers %v", killed, statuses)

	// Both replicas serve again, without a restart.
	for _, env := range []*testenv.Env{r1, r2} {
		ok := false
		for range 50 {
			if code, _, _ := post(env, url.Values{"grant_type": {"client_credentials"}}); code == 200 {
				ok = true
				break
			}
		}
		if !ok {
			t.Fatal("a replica does not serve after the connections came back")
		}
	}
	// The change feed resumes: a revocation at r1 reaches r2.
	victim := issued[len(issued)-1]
	// A client retries a 503 (each pooled connection PostgreSQL terminated fails one request).
	testenv.Eventually(t, "revoking at replica 1 after the outage", func() bool {
		code, body := r1.PostForm("/oauth/v2/revoke", map[string]string{"token": victim}, client.ID, client.Secret)
		if code != 200 && code != 503 {
			t.Fatalf("revoking at replica 1 after the outage: %d %v", code, body)
		}
		return code == 200
	})
	// (A poll may first meet a pooled connection PostgreSQL terminated: it fails once, and the pool
	// replaces the connection.)
	testenv.Eventually(t, "replica 2 sees the revocation made at replica 1 after the outage", func() bool {
		if err := r2.Server.Watcher.Poll(ctx); err != nil {
			return false
		}
		_, info := r2.PostForm("/oauth/v2/introspect", map[string]string{"token": victim}, api.ID, api.Secret)
		return info["active"] == false
	})
	// Every exchanged token has its audit row; the chain verifies.
	events, err := r1.Server.Store.ListAudit(ctx, store.AuditFilter{Type: audit.TypeExchangeAllowed})
	if err != nil {
		t.Fatal(err)
	}
	audited := map[string]bool{}
	for _, e := range events {
		var d struct {
			JTI string `json:"jti"`
		}
		json.Unmarshal(e.Details, &d)
		audited[d.JTI] = true
	}
	for _, raw := range issued {
		a, _, err := r1.Server.Tokens.Resolve(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if a != nil && !audited[a.ID] {
			t.Fatalf("token %s was issued without its audit row", a.ID)
		}
	}
	res, err := audit.Verify(ctx, r1.Server.Store, r1.Server.Secrets.AuditKey())
	if err != nil || !res.Intact {
		t.Fatalf("audit chain after the outage: %+v %v", res, err)
	}
}

// TestAFrozenReplicaDoesNotStopTheOthers: a replica paused in the middle of a batch — its
// transaction open, its chain's registration and its rows locked, nothing committed (simulated with
// a raw connection doing what its writer does, then nothing). Each replica appends to its own audit
// chain, so the other replica's exchanges do not wait for it at all. Where replicas do share a row
// (an operator changing the same rule), the other waits at most lock_timeout and fails fast with an
// error that maps to 503; PostgreSQL ends the frozen transaction after
// idle_in_transaction_session_timeout, after which that write succeeds too, without anyone's
// intervention. (Deadlines shortened through the DSN.)
func TestAFrozenReplicaDoesNotStopTheOthers(t *testing.T) {
	base := testenv.PostgresDSN(t)
	dsn := base + "&lock_timeout=300&idle_in_transaction_session_timeout=1500"
	r := testenv.Start(t, testenv.Options{DB: dsn})
	ctx := context.Background()
	api := r.CreateClient(store.Client{Name: "api"})
	client := r.CreateClient(store.Client{Name: "app", GrantTypes: []string{grantTE}})
	dana := r.CreateUser("dana")
	agent := r.CreateServiceAccount("agent")
	rule := exchange.Rule{Name: "del", Mode: exchange.ModeDelegation, Actors: exchange.Selector{ServiceAccounts: []string{"agent"}},
		Subjects: exchange.Subjects{Users: []string{"*"}}, Clients: []string{client.ID}, Audiences: []string{api.ID}, Scopes: []string{"read"}}
	if err := r.Server.Policy.Put(ctx, rule); err != nil {
		t.Fatal(err)
	}
	form := map[string]string{"grant_type": grantTE, "subject_token": r.Token(store.KindUser, dana.ID, client.Client, "read"), "subject_token_type": typeAT,
		"actor_token": r.Token(store.KindServiceAccount, agent.ID, client.Client, "read"), "actor_token_type": typeAT, "audience": api.ID}
	if code, body := r.PostForm("/oauth/v2/token", form, client.ID, client.Secret); code != 200 {
		t.Fatalf("before the freeze: %d %v", code, body)
	}
	frozen, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer frozen.Close()
	tx, err := frozen.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		`INSERT INTO audit_chains (id, chain_seq, hash, opened_at, updated_at) VALUES ('frozen-replica', 1, '\x00', 0, 0)`,
		`INSERT INTO audit_events (chain, chain_seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES ('frozen-replica', 1, 0, 'exchange.allowed', '', '', '', '{}', '\x00', '\x00')`,
		`UPDATE exchange_rules SET body = body WHERE name = 'del'`, // an operator's change to the rule, in flight
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	for i := range 20 {
		if code, body := r.PostForm("/oauth/v2/token", form, client.ID, client.Secret); code != 200 {
			t.Fatalf("exchange %d while the other replica is frozen mid-batch: %d after %s: %v", i, code, time.Since(start), body)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("20 exchanges took %s while the other replica was frozen: they waited for it", took)
	}
	// A row both replicas write: the wait ends at lock_timeout with an error the endpoints answer 503.
	start = time.Now()
	err = r.Server.Policy.Put(ctx, rule)
	if !store.Unavailable(err) || time.Since(start) > 5*time.Second {
		t.Fatalf("changing the rule the frozen replica holds: %v after %s, want a lock timeout (503) within seconds", err, time.Since(start))
	}
	// PostgreSQL ends the frozen transaction; the change goes through.
	recovered := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if err := r.Server.Policy.Put(ctx, rule); err == nil {
			recovered = true
			break
		}
	}
	if !recovered {
		t.Fatal("the rule could not be changed after PostgreSQL ended the frozen transaction")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("recovery took %s; the idle-in-transaction timeout is 1.5 s", took)
	}
}
