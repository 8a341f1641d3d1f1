package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/testenv"
)

func getJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp
}

// TestDiscoveryListsWhatWorks checks both metadata documents against what the server serves.
func TestDiscoveryListsWhatWorks(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		var doc map[string]any
		getJSON(t, env.URL+path, &doc)
		if doc["issuer"] != env.URL {
			t.Fatalf("%s: issuer %v, want exactly %s", path, doc["issuer"], env.URL)
		}
		for k, want := range map[string]string{"token_endpoint": "/oauth/v2/token", "introspection_endpoint": "/oauth/v2/introspect", "revocation_endpoint": "/oauth/v2/revoke", "jwks_uri": "/oauth/v2/keys"} {
			if doc[k] != env.URL+want {
				t.Errorf("%s = %v", k, doc[k])
			}
		}
		grants := doc["grant_types_supported"].([]any)
		if len(grants) != 5 || grants[0] != "authorization_code" || grants[1] != "client_credentials" || grants[2] != "urn:ietf:params:oauth:grant-type:jwt-bearer" || grants[3] != "refresh_token" || grants[4] != "urn:ietf:params:oauth:grant-type:token-exchange" {
			t.Errorf("grant_types_supported %v must list exactly what the token endpoint serves", grants)
		}
		// The sign-in endpoints are served: an empty authorization request gets the error page
		// (not the JSON 404 of unknown paths), end_session the signed-out page.
		for k, want := range map[string]int{"authorization_endpoint": http.StatusBadRequest, "end_session_endpoint": http.StatusOK} {
			u, _ := doc[k].(string)
			resp, err := http.Get(u)
			if err != nil {
				t.Fatalf("%s %q: %v", k, u, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Errorf("%s %s answered %d %s, want %d with a page", k, u, resp.StatusCode, resp.Header.Get("Content-Type"), want)
			}
		}
		if rt, _ := doc["response_types_supported"].([]any); len(rt) != 1 || rt[0] != "code" {
			t.Errorf("response_types_supported %v: only the code flow is served", rt)
		}
		if m, _ := doc["code_challenge_methods_supported"].([]any); len(m) != 1 || m[0] != "S256" {
			t.Errorf("code_challenge_methods_supported %v: only S256 is accepted", m)
		}
		if algs := doc["id_token_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "ES256" {
			t.Errorf("signing algs %v", algs)
		}
		if types, _ := doc["token_exchange_subject_token_types_supported"].([]any); len(types) != 5 || types[2] != "urn:ietf:params:oauth:token-type:id_token" {
			t.Errorf("token exchange subject types %v", types)
		}
		if types, _ := doc["token_exchange_requested_token_types_supported"].([]any); len(types) != 4 || types[3] != "urn:ietf:params:oauth:token-type:refresh_token" {
			t.Errorf("token exchange requested types %v", types)
		}
	}
}

// TestRotationKeepsOldTokensValid rotates the signing key: tokens signed before stay valid, new
// tokens use the new key, and JWKS publishes next, active and retired keys.
func TestRotationKeepsOldTokensValid(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.CreateClient(store.Client{})
	issue := func() string {
		code, body := env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, c.ID, c.Secret)
		if code != 200 {
			t.Fatalf("token: %v", body)
		}
		return body["access_token"].(string)
	}
	kid := func(raw string) string {
		jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		return jws.Signatures[0].Protected.KeyID
	}
	old := issue()
	if err := env.Server.Keys.Rotate(context.Background(), "ES256", time.Now()); err != nil {
		t.Fatal(err)
	}
	fresh := issue()
	if kid(old) == kid(fresh) {
		t.Fatal("rotation did not change the signing key")
	}
	for _, raw := range []string{old, fresh} {
		if _, body := env.PostForm("/oauth/v2/introspect", map[string]string{"token": raw}, c.ID, c.Secret); body["active"] != true {
			t.Fatalf("token signed with %s inactive after rotation: %v", kid(raw), body)
		}
	}
	var set jose.JSONWebKeySet
	getJSON(t, env.URL+"/oauth/v2/keys", &set)
	es256 := 0
	for _, k := range set.Keys {
		if k.Algorithm == "ES256" {
			es256++
		}
	}
	if es256 != 3 || len(set.Key(kid(old))) != 1 || len(set.Key(kid(fresh))) != 1 {
		t.Fatalf("JWKS must publish the next, active and retired ES256 keys: %d ES256 keys of %d", es256, len(set.Keys))
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := env.CreateClient(store.Client{})
	env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, c.ID, c.Secret)
	env.PostForm("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, c.ID, "wrong")
	for path, want := range map[string]string{"/healthz": "ok", "/ready": "ready"} {
		resp, err := http.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`signet_token_requests_total{grant_type="client_credentials",outcome="ok"} 1`,
		`signet_token_requests_total{grant_type="client_credentials",outcome="invalid_client"} 1`,
		`signet_http_requests_total{code="401",route="token"} 1`,
		`signet_http_request_duration_seconds_bucket{route="token"`,
		`signet_token_cache_entries`,
		`signet_store_commits_total`,
		`signet_store_batched_writes_total`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	env.Server.Store.Close()
	resp, err = http.Get(env.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/ready with a closed store: %d", resp.StatusCode)
	}
}

// TestWrongMasterKeyIsRefused: a server started with another master key than the one that created
// the database fails with a message instead of serving tokens nobody can verify.
func TestWrongMasterKeyIsRefused(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	testenv.Start(t, testenv.Options{DB: dsn, MasterKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="})
	err := testenv.TryStart(t, testenv.Options{DB: dsn, MasterKey: "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="})
	if err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("want a master key error, got %v", err)
	}
}

// TestRateLimitAnswers429WithRetryAfter: past the burst a client is told to slow down with 429 and
// Retry-After. One request a second refills the bucket, so on a slow machine a request may slip
// through; the test sends until the limit answers, within a generous bound.
func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Modify: func(c *config.Config) { c.RateLimit, c.RateBurst = 1, 2 }})
	c := env.CreateClient(store.Client{})
	send := func() *http.Response {
		resp := env.Do("/oauth/v2/token", map[string]string{"grant_type": "client_credentials"}, func(r *http.Request) { r.SetBasicAuth(c.ID, c.Secret) })
		resp.Body.Close()
		return resp
	}
	for i := range 2 {
		if resp := send(); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst of 2: %d", i+1, resp.StatusCode)
		}
	}
	const bound = 100
	for i := range bound {
		resp := send()
		if resp.StatusCode == http.StatusOK {
			continue // the bucket refilled between requests
		}
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("request %d past the burst: %d %v", i+3, resp.StatusCode, resp.Header)
		}
		return
	}
	t.Fatalf("%d requests past a burst of 2 at one a second, none refused", bound)
}

// TestProfilerOnlyOnDebugAddr: --debug-addr serves net/http/pprof on its own listener; the public
// address never does.
func TestProfilerOnlyOnDebugAddr(t *testing.T) {
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	cfg, err := config.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir, cfg.Addr, cfg.DebugAddr = t.TempDir(), "127.0.0.1:0", free()
	s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ready) }()
	defer func() { cancel(); <-done }()
	public := <-ready
	for _, c := range []struct {
		url  string
		want int
	}{
		{"http://" + cfg.DebugAddr + "/debug/pprof/cmdline", http.StatusOK},
		{"http://" + public + "/debug/pprof/cmdline", http.StatusNotFound},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.url, resp.StatusCode, c.want)
		}
	}
}

// TestReplicasStartingTogether: replicas opening one fresh PostgreSQL database at the same moment
// all start, with one admin user and one active signing key; replicas started together with
// different master keys cannot both seal data: one starts, the others refuse with the fingerprint
// error, and the database still opens with the winner's key.
func TestReplicasStartingTogether(t *testing.T) {
	newKey := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	startAll := func(opts []testenv.Options) []error {
		errs := make([]error, len(opts))
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i, o := range opts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				errs[i] = testenv.TryStart(t, o)
			}()
		}
		close(gate)
		wg.Wait()
		return errs
	}
	t.Run("bootstrap at the same moment", func(t *testing.T) {
		// Open the replicas (migrations are serialized anyway), then bootstrap them all at once.
		dsn, key := testenv.PostgresDSN(t), newKey()
		var replicas []*server.Server
		for range 4 {
			cfg, err := config.Defaults()
			if err != nil {
				t.Fatal(err)
			}
			cfg.DB, cfg.MasterKey, cfg.DataDir, cfg.Issuer = dsn, key, t.TempDir(), "http://signet.together.test"
			s, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			replicas = append(replicas, s)
		}
		runs := make([]*server.FirstRun, len(replicas))
		errs := make([]error, len(replicas))
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i, s := range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				runs[i], errs[i] = s.Bootstrap(context.Background())
			}()
		}
		close(gate)
		wg.Wait()
		passwords := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d failed to bootstrap: %v", i, err)
			}
			if runs[i].AdminPassword != "" {
				passwords++
			}
		}
		users, _ := replicas[0].Store.ListUsers(context.Background())
		keys, _ := replicas[0].Store.ListSigningKeys(context.Background())
		active := map[string]int{}
		for _, k := range keys {
			if k.State == store.SigningActive {
				active[k.Algorithm]++
			}
		}
		// One active key per algorithm: the default (ES256) and RS256, which every OpenID
		// provider must be able to sign ID tokens with.
		if len(users) != 1 || len(active) != 2 || active["ES256"] != 1 || active["RS256"] != 1 || passwords != 1 {
			t.Fatalf("%d users, active keys %v, %d printed passwords after a joint bootstrap; want 1, one ES256 and one RS256, 1", len(users), active, passwords)
		}
	})
	t.Run("different keys", func(t *testing.T) {
		dsn := testenv.PostgresDSN(t)
		keys := []string{newKey(), newKey(), newKey()}
		var opts []testenv.Options
		for _, k := range keys {
			opts = append(opts, testenv.Options{DB: dsn, MasterKey: k, Issuer: "http://signet.together.test"})
		}
		winner := -1
		for i, err := range startAll(opts) {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("replicas %d and %d both started with different master keys", winner, i)
			case err == nil:
				winner = i
			case !strings.Contains(err.Error(), "not the one this database was created with"):
				t.Fatalf("replica %d refused for another reason: %v", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no replica started")
		}
		if err := testenv.TryStart(t, testenv.Options{DB: dsn, MasterKey: keys[winner], Issuer: "http://signet.together.test"}); err != nil {
			t.Fatalf("the database no longer opens with the winner's key: %v", err)
		}
	})
}
