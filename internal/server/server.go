// Package server assembles a Signet provider from its configuration (store, keys, caches, handlers)
// and serves it over HTTP with the middleware every route shares. The CLI opens the same assembly
// without serving, so commands and server always agree on how data is read and written.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/admin"
	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/changefeed"
	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/directory"
	"github.com/signet-id/signet/internal/exchange"
	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/logout"
	"github.com/signet-id/signet/internal/metrics"
	"github.com/signet-id/signet/internal/notify"
	"github.com/signet-id/signet/internal/oauth"
	"github.com/signet-id/signet/internal/oidc"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/signin"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/backends"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/tokens"
	"github.com/signet-id/signet/internal/ui"
)

// Server is an assembled provider.
type Server struct {
	Config   *config.Config
	Log      *slog.Logger
	Store    store.Store
	Secrets  *secrets.Keys
	Keys     *keys.Manager
	Dir      *directory.Directory
	Tokens   *tokens.Service
	OAuth    *oauth.Handler
	Watcher  *changefeed.Watcher
	Metrics  *metrics.Metrics
	Audit    *audit.Log
	Policy   *exchange.Policy
	Sessions *exchange.Sessions
	Webhook  *notify.Webhook // nil without --webhook-url
	SignIn   *signin.Handler
	Logout   *logout.Notifier // back-channel logout to the clients of sessions that end

	// MasterKeyCreated reports that this start generated the development master key.
	MasterKeyCreated bool
}

// issuerSetting records the issuer the server last started with.
const issuerSetting = "issuer"

// masterKeySetting records the master key's fingerprint, so a wrong key is caught at start.
const masterKeySetting = "master_key_fingerprint"

// OpenExisting assembles the provider on a store that `signet serve` has created, and refuses one
// that does not exist yet: a command pointed at the wrong place must not start a second database.
func OpenExisting(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	exists, err := backends.Exists(ctx, cfg.DSN())
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", where(cfg), err)
	}
	if !exists {
		return nil, fmt.Errorf("no Signet database at %s: only `signet serve` creates one. "+
			"Point this command at the server's data with the same --data-dir, --db (or SIGNET_DB) or --config as `signet serve` was given", where(cfg))
	}
	return open(ctx, cfg, log, sqlstore.WithAuditChain(CLIAuditChain()))
}

// CLIAuditChain is the audit chain every CLI command on one host appends to on PostgreSQL (a
// server's chain is its own, see postgres.DefaultAuditChain): one chain per host rather than one per
// command. Two commands running at once take turns on it (the chain's registered head is its guard).
func CLIAuditChain() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return host + "/cli"
}

// where names the database a configuration points at and the setting that chose it.
func where(cfg *config.Config) string {
	if cfg.DB != "" {
		return fmt.Sprintf("%s (from %s)", RedactDSN(cfg.DB), cfg.Source("db"))
	}
	return fmt.Sprintf("%s (the data directory %s, from %s)", cfg.DSN(), cfg.DataDir, cfg.Source("data-dir"))
}

// RedactDSN hides a password in a database URL.
func RedactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return dsn
}

// Open assembles the provider: opens (and migrates, or creates) the store, loads the master key,
// checks it is the one that sealed the data, loads signing keys and the revocation set. A database
// that exists without its master key is an error: a new key could read nothing sealed with the old.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	return open(ctx, cfg, log)
}

// open is Open with options for the store (the CLI's audit chain).
func open(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...sqlstore.Option) (*Server, error) {
	dsn := cfg.DSN()
	master, err := secrets.ReadMasterKey(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	created := false
	if master == nil {
		exists, err := backends.Exists(ctx, dsn)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", where(cfg), err)
		}
		if exists {
			return nil, fmt.Errorf("the database %s exists but its master key does not: %s is missing and neither --master-key nor SIGNET_MASTER_KEY is set. "+
				"Signet will not generate a new key, because nothing sealed with the old one (signing keys, secret and token hashes, the audit chain) could be read with it. "+
				"Restore master.key from the backup taken with the database into %s, or set SIGNET_MASTER_KEY to the original key", where(cfg), secrets.MasterKeyPath(cfg.DataDir), cfg.DataDir)
		}
		if master, err = secrets.CreateMasterKey(cfg.DataDir); err != nil {
			return nil, err
		}
		created = true
	}
	if strings.HasPrefix(dsn, "sqlite:") {
		if err := os.MkdirAll(filepath.Dir(strings.TrimPrefix(dsn, "sqlite:")), 0o700); err != nil {
			return nil, err
		}
	}
	sk, err := secrets.New(master)
	if err != nil {
		return nil, err
	}
	st, err := backends.Open(ctx, dsn, append([]sqlstore.Option{sqlstore.WithAuditKey(sk.AuditKey())}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	s := &Server{Config: cfg, Log: log, Store: st, Secrets: sk, MasterKeyCreated: created}
	if err := s.checkMasterKey(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if cfg.IssuerDefaulted {
		// A command run without --issuer mints and checks tokens for the issuer the server uses.
		if iss, err := st.GetSetting(ctx, issuerSetting); err == nil {
			cfg.Issuer = iss
		}
	}
	s.Keys = keys.NewManager(st, sk, cfg.MaxAccessTTL+cfg.Leeway)
	s.Dir = directory.New(st)
	s.Tokens = tokens.New(tokens.Config{
		Issuer: cfg.Issuer, Store: st, Keys: s.Keys, Secrets: sk, Leeway: cfg.Leeway,
		CacheSize: cfg.CacheSize, Log: log, Principals: s.Dir,
	})
	s.Watcher = changefeed.New(st, cfg.PollInterval, log)
	s.Watcher.Subscribe(s.Dir.Invalidate)
	s.Watcher.Subscribe(s.Tokens.Invalidate)
	s.Watcher.Subscribe(func(c store.Change) {
		if c.Kind == store.ChangeSigningKey || c.Kind == store.ChangeResync {
			if err := s.Keys.Load(context.Background()); err != nil {
				log.Error("reloading signing keys failed", "err", err)
			}
		}
	})
	// Start the feed before loading caches, so nothing changed in between is missed.
	if err := s.Watcher.Start(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.Keys.Load(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.Tokens.LoadRevocations(ctx); err != nil {
		st.Close()
		return nil, err
	}
	s.Audit = audit.New(st)
	s.Sessions = &exchange.Sessions{Store: st, Tokens: s.Tokens, Audit: s.Audit, Propagation: 2 * cfg.PollInterval}
	s.Watcher.Subscribe(s.Sessions.Invalidate)
	s.Policy = exchange.NewPolicy(st, cfg.PolicyFile)
	s.Watcher.Subscribe(s.Policy.Invalidate)
	if err := s.Policy.Load(ctx); err != nil {
		st.Close()
		return nil, err
	}
	s.Metrics = metrics.New(s.Tokens.CacheStats)
	if b, ok := st.(interface {
		BatchStats() (commits, items uint64)
	}); ok {
		s.Metrics.RegisterBatchStats(b.BatchStats)
	}
	s.OAuth = &oauth.Handler{
		Issuer: cfg.Issuer, Tokens: s.Tokens, Keys: s.Keys, Dir: s.Dir, Log: log, Now: time.Now,
		DefaultAccessTTL: cfg.AccessTTL, MaxAccessTTL: cfg.MaxAccessTTL, DefaultAlg: cfg.SigningAlg,
		AccountTokenFormat: cfg.AccountFormat, Observe: s.Metrics.Grant,
		Audit: s.Audit, Exchange: &oauth.Exchange{Policy: s.Policy, Sessions: s.Sessions, Store: st},
		Auth: &oauth.Authenticator{
			Issuer: cfg.Issuer, Dir: s.Dir, Secrets: sk, Replay: st, Tokens: s.Tokens,
			MaxAssertion: cfg.AssertionTTL, Leeway: cfg.Leeway, Now: time.Now, Log: log,
		},
	}
	s.OAuth.SignIn = &oauth.SignIn{Store: st, IDTokenTTL: cfg.IDTokenTTL, DefaultRefreshTTL: cfg.RefreshTTL}
	if s.SignIn, err = s.newSignIn(); err != nil {
		st.Close()
		return nil, err
	}
	s.Logout = &logout.Notifier{Issuer: cfg.Issuer, Alg: cfg.SigningAlg, Store: st, Clients: s.Dir, Keys: s.Keys, Audit: s.Audit, Log: log,
		Grace: 5 * time.Second}
	s.SignIn.Logout = s.Logout.SessionEnded
	if rules, err := s.Policy.Rules(ctx); err == nil && cfg.WebhookURL == "" {
		for _, r := range rules {
			if r.NotifySubject {
				log.Warn("rule asks to notify the subject, but no --webhook-url is set: notifications wait in the audit log until one is", "rule", r.Name)
			}
		}
	}
	if cfg.WebhookURL != "" {
		s.Webhook = &notify.Webhook{URL: cfg.WebhookURL, Issuer: cfg.Issuer, Alg: cfg.SigningAlg, Store: st, Keys: s.Keys, Log: log, Delivered: s.Metrics.Notified}
		s.OAuth.Exchange.Notify = s.Webhook.Wake
	}
	return s, nil
}

// newSignIn assembles the hosted sign-in pages with the configured branding.
func (s *Server) newSignIn() (*signin.Handler, error) {
	cfg := s.Config
	brand := ui.Branding{ProductName: cfg.BrandName, PrimaryColor: cfg.BrandColor}
	if cfg.BrandLogo != "" {
		logo, err := os.ReadFile(cfg.BrandLogo)
		if err != nil {
			return nil, fmt.Errorf("brand-logo: %w", err)
		}
		brand.Logo, brand.LogoType = logo, http.DetectContentType(logo)
		if strings.HasSuffix(strings.ToLower(cfg.BrandLogo), ".svg") {
			brand.LogoType = "image/svg+xml"
		}
	}
	pages, err := ui.New(brand)
	if err != nil {
		return nil, fmt.Errorf("branding: %w", err)
	}
	h := &signin.Handler{
		Issuer: cfg.Issuer, Store: s.Store, Dir: s.Dir, Secrets: s.Secrets, Tokens: s.Tokens, Audit: s.Audit, UI: pages, Log: s.Log,
		Now: time.Now, SessionTTL: cfg.SessionTTL, TokenLife: max(cfg.MaxAccessTTL, cfg.IDTokenTTL), MinPassword: cfg.MinPassword,
		TOTPIssuer: cfg.BrandName,
	}
	h.Init()
	return h, nil
}

func (s *Server) checkMasterKey(ctx context.Context) error {
	// The first replica to write the fingerprint wins; every other start compares with it, so two
	// replicas started together with different keys cannot both seal data.
	err := s.Store.CreateSetting(ctx, masterKeySetting, s.Secrets.Fingerprint())
	if err == nil || !errors.Is(err, store.ErrConflict) {
		return err
	}
	fp, err := s.Store.GetSetting(ctx, masterKeySetting)
	switch {
	case err != nil:
		return err
	case fp != s.Secrets.Fingerprint():
		return fmt.Errorf("the master key (fingerprint %s) is not the one this database was created with (fingerprint %s): set SIGNET_MASTER_KEY or --master-key to the original key", s.Secrets.Fingerprint(), fp)
	}
	return nil
}

// Close gives up pending back-channel logouts (auditing each) and releases the store.
func (s *Server) Close() error {
	if s.Logout != nil {
		s.Logout.Close()
	}
	return s.Store.Close()
}

// Handler returns the HTTP handler with every route and the shared middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	disc := &oidc.Discovery{Issuer: s.Config.Issuer, GrantTypes: s.OAuth.GrantTypes(), SigningAlgs: s.Keys.Algorithms, IntrospectionAlg: s.Config.SigningAlg,
		SubjectTokenTypes: oauth.SubjectTokenTypes, RequestedTokenTypes: oauth.RequestedTokenTypes,
		SignIn: true, ACRValues: signin.ACRValues, BackchannelLogout: true}
	route := func(pattern, name string, h http.Handler) {
		mux.Handle(pattern, s.instrument(name, h))
	}
	route("GET "+oidc.DiscoveryPath, "discovery", disc)
	route("GET "+oidc.RFC8414Path, "discovery", disc)
	route("GET "+oauth.KeysPath, "jwks", oidc.JWKS{Keys: s.Keys.JWKS})
	limited := newRateLimiter(s.Config.RateLimit, s.Config.RateBurst)
	route(oauth.TokenPath, "token", limited.wrap(http.HandlerFunc(s.OAuth.Token)))
	route(oauth.IntrospectPath, "introspect", limited.wrap(http.HandlerFunc(s.OAuth.Introspect)))
	route(oauth.RevokePath, "revoke", limited.wrap(http.HandlerFunc(s.OAuth.Revoke)))
	route("GET "+oidc.UserinfoPath, "userinfo", &oidc.Userinfo{Tokens: s.Tokens, Dir: s.Dir})
	route("POST "+oidc.UserinfoPath, "userinfo", &oidc.Userinfo{Tokens: s.Tokens, Dir: s.Dir})
	s.SignIn.Routes(route)
	(&admin.API{Issuer: s.Config.Issuer, Store: s.Store, Tokens: s.Tokens, Dir: s.Dir, Policy: s.Policy, Sessions: s.Sessions, Audit: s.Audit, AuditKey: s.Secrets.AuditKey(), OAuth: s.OAuth}).Routes(mux, s.instrument)
	route("GET /healthz", "healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	route("GET /ready", "ready", http.HandlerFunc(s.ready))
	mux.Handle("GET /metrics", s.Metrics.Handler())
	mux.Handle("/", s.instrument("not_found", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"not_found","error_description":"no such endpoint; see ` + s.Config.Issuer + oidc.DiscoveryPath + `"}`))
	})))
	return s.recoverer(mux)
}

// ready reports whether the store answers and signing keys are loaded.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if err := s.Store.Ping(ctx); err != nil {
		problems = append(problems, "store: "+err.Error())
	}
	if len(s.Keys.Algorithms()) == 0 {
		problems = append(problems, "no active signing key")
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Join(problems, "\n") + "\n"))
		return
	}
	w.Write([]byte("ready\n"))
}

// Run serves until ctx is done, then shuts down gracefully. ready, if not nil, receives the bound
// address once the listener is open.
func (s *Server) Run(ctx context.Context, ready chan<- string) error {
	ln, err := net.Listen("tcp", s.Config.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, nil, ready)
}

// Serve is Run on listeners bound beforehand (so a busy port is found before anything is created);
// debug, if not nil, serves the profiler. It closes both.
func (s *Server) Serve(ctx context.Context, ln, debug net.Listener, ready chan<- string) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.Watcher.Run(runCtx)
	if n, ok := s.Store.(store.ChangeNotifier); ok {
		go s.watchNotifications(runCtx, n)
	}
	go s.prune(runCtx)
	if debug == nil && s.Config.DebugAddr != "" {
		var err error
		if debug, err = net.Listen("tcp", s.Config.DebugAddr); err != nil {
			ln.Close()
			return fmt.Errorf("debug-addr: %w", err)
		}
	}
	if debug != nil {
		s.serveDebug(runCtx, debug)
	}
	if s.Webhook != nil {
		go s.Webhook.Run(runCtx)
	}
	errc := make(chan error, 1)
	go func() {
		if s.Config.TLSCert != "" {
			errc <- hs.ServeTLS(ln, s.Config.TLSCert, s.Config.TLSKey)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(shutdownCtx)
}

// serveDebug serves Go's profiler on its own listener (never on the public address), until ctx ends.
func (s *Server) serveDebug(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	go func() { <-ctx.Done(); hs.Close() }()
	s.Log.Info("profiler listening", "addr", ln.Addr().String())
}

// watchNotifications turns the backend's push notifications into immediate polls, reconnecting
// with a pause when the connection drops.
func (s *Server) watchNotifications(ctx context.Context, n store.ChangeNotifier) {
	for ctx.Err() == nil {
		if err := n.WatchChanges(ctx, s.Watcher.Wake); err != nil && ctx.Err() == nil {
			s.Log.Warn("change notifications interrupted; polling continues", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// prune removes expired rows, and expired tokens from the cache, every few minutes.
func (s *Server) prune(ctx context.Context) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Tokens.Sweep(time.Now())
			if n, err := s.Store.Prune(ctx, time.Now()); err != nil {
				s.Log.Warn("pruning expired rows failed", "err", err)
			} else if n > 0 {
				s.Log.Debug("pruned expired rows", "rows", n)
			}
		}
	}
}
