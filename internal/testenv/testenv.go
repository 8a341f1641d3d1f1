// Package testenv starts a complete Signet provider on loopback for tests, on SQLite by default or
// on PostgreSQL (a schema of its own), and creates the clients, service accounts and key files the
// tests need through the same store the CLI uses. Tests only.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema setup

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

// Env is a running provider.
type Env struct {
	T      testing.TB
	URL    string // where this server listens (the issuer unless Options.Issuer is set)
	Server *server.Server
	HTTP   *httptest.Server
	Config *config.Config
}

// Options tune Start.
type Options struct {
	DB        string // DSN; empty: SQLite in a temp dir
	Issuer    string // empty: the server's own URL (set it to share one issuer between replicas)
	MasterKey string // base64; empty: generated in the temp data dir
	Modify    func(*config.Config)
}

// Start runs a provider for the test and stops it in Cleanup.
func Start(t testing.TB, opt Options) *Env {
	t.Helper()
	env, err := start(t, opt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TryStart starts a provider and returns the error that prevented it, if any.
func TryStart(t testing.TB, opt Options) error {
	_, err := start(t, opt)
	return err
}

func start(t testing.TB, opt Options) (*Env, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Listener.Close()
	hs.Listener = ln
	issuer := "http://" + ln.Addr().String()
	if opt.Issuer != "" {
		issuer = opt.Issuer
	}
	cfg, err := config.Defaults()
	if err != nil {
		return nil, err
	}
	cfg.Issuer = issuer
	cfg.DataDir = t.TempDir()
	cfg.DB = opt.DB
	cfg.MasterKey = opt.MasterKey
	if opt.Modify != nil {
		opt.Modify(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SIGNET_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := server.Open(ctx, cfg, log)
	if err != nil {
		cancel()
		ln.Close()
		return nil, fmt.Errorf("open server: %w", err)
	}
	if _, err := s.Bootstrap(ctx); err != nil {
		cancel()
		ln.Close()
		s.Close()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	go s.Watcher.Run(ctx)
	if s.Webhook != nil {
		s.Webhook.MinBackoff, s.Webhook.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond // tests wait for retries
		go s.Webhook.Run(ctx)
	}
	s.Logout.MinBackoff, s.Logout.MaxBackoff = 20*time.Millisecond, 200*time.Millisecond // tests wait for retries
	if n, ok := s.Store.(store.ChangeNotifier); ok {
		go n.WatchChanges(ctx, s.Watcher.Wake)
	}
	hs.Config.Handler = s.Handler()
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		cancel()
		s.Close()
	})
	return &Env{T: t, URL: "http://" + ln.Addr().String(), Server: s, HTTP: hs, Config: cfg}, nil
}

// Unavailable ends a test whose outside dependency (PostgreSQL, Node.js) is missing: it skips with
// the reason (`go test -v` prints it) on a developer's machine and fails under CI (CI set and not
// "false"), where .ci/run must have provided everything.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal(reason + " (CI is set, so this is a failure, not a skip)")
	}
	t.Skip(reason)
}

// PostgresDSN creates a fresh schema in the test PostgreSQL and returns a DSN that uses it; the
// schema is dropped in Cleanup. Without a reachable PostgreSQL it fails under CI and skips otherwise.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SIGNET_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		Unavailable(t, "PostgreSQL is not reachable at "+base+" (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): "+err.Error())
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "signet_e_" + hex.EncodeToString(b)
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	return base + "&search_path=" + schema
}

// Client is a created client with its secret.
type Client struct {
	*store.Client
	Secret string
}

// CreateClient stores a client; fields left empty get the CLI's defaults (api, client_secret_basic,
// client_credentials, JWT ES256).
func (e *Env) CreateClient(c store.Client) Client {
	e.T.Helper()
	if c.ID == "" {
		c.ID = "c-" + secrets.NewID()[:12]
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Type == "" {
		c.Type = store.ClientAPI
	}
	if c.AuthMethod == "" {
		c.AuthMethod = store.AuthSecretBasic
	}
	if c.GrantTypes == nil {
		c.GrantTypes = []string{"client_credentials"}
	}
	if c.AccessTokenFormat == "" {
		c.AccessTokenFormat = store.FormatJWT
	}
	if c.AccessTokenAlg == "" {
		c.AccessTokenAlg = e.Config.SigningAlg
	}
	var secret string
	if c.AuthMethod == store.AuthSecretBasic || c.AuthMethod == store.AuthSecretPost {
		secret, c.SecretSalt, c.SecretHash = e.Server.Secrets.NewSecret()
	}
	c.CreatedAt, c.UpdatedAt = time.Now(), time.Now()
	ctx := context.Background()
	if _, err := e.Server.Keys.Ensure(ctx, c.AccessTokenAlg); err != nil {
		e.T.Fatal(err)
	}
	if err := e.Server.Store.CreateClient(ctx, &c); err != nil {
		e.T.Fatalf("create client: %v", err)
	}
	return Client{Client: &c, Secret: secret}
}

// CreateServiceAccount stores a service account with roles and the CLI's default grants
// (client_credentials and the JWT bearer grant).
func (e *Env) CreateServiceAccount(name string, roles ...string) *store.ServiceAccount {
	e.T.Helper()
	return e.CreateServiceAccountWithGrants(name, oauth.DefaultAccountGrants(), roles...)
}

// CreateServiceAccountWithGrants stores a service account that may use exactly these grant types
// (none when empty).
func (e *Env) CreateServiceAccountWithGrants(name string, grants []string, roles ...string) *store.ServiceAccount {
	e.T.Helper()
	sa := &store.ServiceAccount{ID: "sa-" + secrets.NewID()[:12], Name: name, Roles: roles, GrantTypes: grants, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.Server.Store.CreateServiceAccount(context.Background(), sa); err != nil {
		e.T.Fatalf("create service account: %v", err)
	}
	return sa
}

// KeyFile registers a new key for a service account or client and returns the key file's JSON and
// its path in a temp dir.
func (e *Env) KeyFile(kind store.PrincipalKind, ownerID, alg string, expires time.Time) (*keys.KeyFile, string) {
	e.T.Helper()
	priv, pub, err := keys.GenerateKeyPair(alg)
	if err != nil {
		e.T.Fatal(err)
	}
	pk := &store.PublicKey{ID: secrets.NewID(), OwnerKind: kind, OwnerID: ownerID, Algorithm: alg, PublicKeyPEM: pub, ExpiresAt: expires, CreatedAt: time.Now()}
	if err := e.Server.Store.CreatePublicKey(context.Background(), pk); err != nil {
		e.T.Fatal(err)
	}
	kf := &keys.KeyFile{KeyID: pk.ID, Key: string(priv)}
	if kind == store.KindServiceAccount {
		kf.Type, kf.UserID = "serviceaccount", ownerID
	} else {
		kf.Type, kf.AppID, kf.ClientID = "application", ownerID, ownerID
	}
	b, _ := json.Marshal(kf)
	path := filepath.Join(e.T.TempDir(), "key.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		e.T.Fatal(err)
	}
	return kf, path
}

// PostForm sends a form POST with optional Basic credentials and returns status and decoded JSON.
func (e *Env) PostForm(path string, form map[string]string, basicID, basicSecret string) (int, map[string]any) {
	e.T.Helper()
	resp := e.Do(path, form, func(r *http.Request) {
		if basicID != "" {
			r.SetBasicAuth(basicID, basicSecret)
		}
	})
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			e.T.Fatalf("%s answered non-JSON %q", path, b)
		}
	}
	return resp.StatusCode, body
}

// Do sends a form POST to path, letting edit adjust the request.
func (e *Env) Do(path string, form map[string]string, edit func(*http.Request)) *http.Response {
	e.T.Helper()
	v := url.Values{}
	for k, x := range form {
		v.Set(k, x)
	}
	req, err := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(v.Encode()))
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	return resp
}

// CreateUser stores a user with roles.
func (e *Env) CreateUser(username string, roles ...string) *store.User {
	e.T.Helper()
	u := &store.User{ID: "u-" + secrets.NewID()[:12], Username: username, Roles: roles, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.Server.Store.CreateUser(context.Background(), u); err != nil {
		e.T.Fatalf("create user: %v", err)
	}
	return u
}

// CreateUserWithPassword stores a user who signs in with password.
func (e *Env) CreateUserWithPassword(username, password string, roles ...string) *store.User {
	e.T.Helper()
	u := &store.User{ID: "u-" + secrets.NewID()[:12], Username: username, Roles: roles, Email: username + "@example.com",
		DisplayName: strings.ToUpper(username[:1]) + username[1:], PasswordHash: secrets.HashPassword(password), CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := e.Server.Store.CreateUser(context.Background(), u); err != nil {
		e.T.Fatalf("create user: %v", err)
	}
	return u
}

// Token mints an access token about a subject for a client, as `signet token issue` does.
func (e *Env) Token(kind store.PrincipalKind, subject string, c *store.Client, scope ...string) string {
	e.T.Helper()
	resp, _, err := e.Server.OAuth.IssueAccessToken(context.Background(), oauth.Issue{SubjectKind: kind, Subject: subject, ClientID: c.ID, Client: c, Scope: scope})
	if err != nil {
		e.T.Fatalf("issue token: %v", err)
	}
	return resp.AccessToken
}

// AdminToken mints an access token for the admin API's audience, as an operator's script would
// request it (audience=<issuer>/admin/v1); the subject must hold signet:admin.
func (e *Env) AdminToken(kind store.PrincipalKind, subject string, c *store.Client) string {
	e.T.Helper()
	resp, _, err := e.Server.OAuth.IssueAccessToken(context.Background(), oauth.Issue{SubjectKind: kind, Subject: subject, ClientID: c.ID, Client: c,
		Audience: []string{oauth.AdminAudience(e.Server.Config.Issuer)}})
	if err != nil {
		e.T.Fatalf("issue admin token: %v", err)
	}
	return resp.AccessToken
}

// PostAs sends a form POST as client c: a public client sends its client_id in the body, a
// confidential one authenticates with HTTP Basic.
func (e *Env) PostAs(c Client, path string, form map[string]string) (int, map[string]any) {
	e.T.Helper()
	if c.AuthMethod == store.AuthNone {
		form["client_id"] = c.ID
		return e.PostForm(path, form, "", "")
	}
	return e.PostForm(path, form, c.ID, c.Secret)
}

// Bearer calls path with an Authorization: Bearer token and an optional JSON body, and returns the
// status and the decoded JSON answer.
func (e *Env) Bearer(method, path, token string, body any) (int, map[string]any) {
	e.T.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.URL+path, r)
	if err != nil {
		e.T.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// Patience bounds how long a test waits for something another goroutine, process or replica does
// (the change feed applying a change, a CLI write taking effect): generous, so that a loaded 2-core
// machine is slow rather than failing. How quickly it happens is measured by the load command
// (signet-bench), not asserted by tests.
const Patience = 30 * time.Second

// Eventually checks cond every 10 ms until it holds and returns how long that took; it fails the
// test, naming what, when Patience passes first.
func Eventually(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > Patience {
			t.Fatalf("%s: still not so after %v", what, time.Since(start).Round(time.Millisecond))
		}
		<-tick.C
	}
	return time.Since(start)
}
