package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/server"
)

func serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the provider (creates the database, a signing key and an admin on first run)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			log := newLogger(cfg, os.Stderr)
			tuneGC()
			s, err := server.Open(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer s.Close()
			fr, err := s.Bootstrap(cmd.Context())
			if err != nil {
				return err
			}
			go reloadPolicyOnHUP(cmd.Context(), s)
			if os.Getenv("GOMEMLIMIT") == "" {
				go followCacheSize(cmd.Context(), s)
			}
			ready := make(chan string, 1)
			go func() {
				addr := <-ready
				printBanner(cmd.OutOrStdout(), s, fr, addr)
			}()
			return s.Run(cmd.Context(), ready)
		},
	}
}

// printBanner tells a newcomer what is running and what to do next.
func printBanner(w io.Writer, s *server.Server, fr *server.FirstRun, addr string) {
	cfg := s.Config
	fmt.Fprintf(w, "Signet is running.\n  issuer:    %s\n  listening: %s\n  database:  %s\n", cfg.Issuer, addr, redactDSN(cfg.DSN()))
	if s.MasterKeyCreated {
		fmt.Fprintf(w, "  master key: generated into %s/master.key (development only: set SIGNET_MASTER_KEY in production)\n", cfg.DataDir)
	}
	if fr.AdminPassword != "" {
		fmt.Fprintf(w, "\nFirst run: created the admin user.\n  username: %s\n  password: %s\n  (shown once; store it now)\n", fr.AdminUsername, fr.AdminPassword)
	}
	fmt.Fprintf(w, `
Next steps (in another terminal):
  go run ./cmd/signet client create --name my-api --json
  curl -s -u '<client_id>:<client_secret>' -d grant_type=client_credentials %[1]s/oauth/v2/token
  curl -s -u '<client_id>:<client_secret>' -d token=<access_token> %[1]s/oauth/v2/introspect
Discovery: %[1]s/.well-known/openid-configuration
`, cfg.Issuer)
}

// redactDSN hides a password in a database URL.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
	}
	return dsn
}

// tuneGC lets the heap grow to nine times its live size between collections (GOGC=800: the hot
// paths allocate per request, and each collection shows up in tail latency; measured in
// docs/performance.md) while a soft memory limit keeps the heap, and so the resident size,
// bounded: near the limit the collector runs as often as it must. GOGC and GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(800)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit(0))
	}
}

// memoryLimit is the soft memory limit for a token cache holding n entries: 100 MiB for everything
// else, plus about 1.5 KiB per cached token (its claims and its encoded answer). A fixed limit that
// a full cache of live tokens exceeds makes the collector run without pause.
func memoryLimit(n int) int64 { return 100<<20 + int64(n)*1536 }

// followCacheSize moves the memory limit with the cache's occupancy every 10 s (expired tokens
// leave the cache, so it shrinks again).
func followCacheSize(ctx context.Context, s *server.Server) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _, n := s.Tokens.CacheStats()
			debug.SetMemoryLimit(memoryLimit(n))
		}
	}
}

// reloadPolicyOnHUP rereads the policy file on SIGHUP; a broken file keeps the previous rules.
func reloadPolicyOnHUP(ctx context.Context, s *server.Server) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := s.Policy.LoadFile(); err != nil {
				s.Log.Error("policy file not reloaded; the previous rules stay in force", "err", err)
			} else {
				s.Log.Info("policy file reloaded", "file", s.Config.PolicyFile)
			}
		}
	}
}
