package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
)

func serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the provider (creates the database, a signing key and an admin on first run)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Check every setting, then bind, then create: a mistake or a busy port leaves nothing behind.
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			log := newLogger(cfg, os.Stderr)
			warnings, err := cfg.CheckServe()
			if err != nil {
				return err
			}
			for _, w := range warnings {
				log.Warn(w)
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				return fmt.Errorf("addr (from %s): %w", cfg.Source("addr"), err)
			}
			defer ln.Close()
			var debugLn net.Listener
			if cfg.DebugAddr != "" {
				if debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
					return fmt.Errorf("debug-addr (from %s): %w", cfg.Source("debug-addr"), err)
				}
				defer debugLn.Close()
			}
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
			// Password hashing runs in its own slots, on threads the kernel serves last
			// (signin.Handler.Init): give it processors of its own too, so that a storm of
			// sign-ins cannot hold the processors token checks run on.
			runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + s.SignIn.HashSlots())
			return s.Serve(cmd.Context(), ln, debugLn, ready)
		},
	}
	config.ServerFlags(cmd.Flags())
	return cmd
}

// printBanner tells a newcomer what is running and what to do next, with the flags that point a
// command at this server's data.
func printBanner(w io.Writer, s *server.Server, fr *server.FirstRun, addr string) {
	cfg := s.Config
	fmt.Fprintf(w, "Signet is running.\n  issuer:    %s\n  listening: %s\n  database:  %s\n", cfg.Issuer, addr, server.RedactDSN(cfg.DSN()))
	if s.MasterKeyCreated {
		fmt.Fprintf(w, "  master key: generated into %s (development only: set SIGNET_MASTER_KEY in production; back it up with the database)\n", secrets.MasterKeyPath(cfg.DataDir))
	}
	if fr.AdminPassword != "" {
		fmt.Fprintf(w, "\nFirst run: created the admin user.\n  username: %s\n  password: %s\n  (shown once; store it now; `signet user set-password admin` sets a new one)\n", fr.AdminUsername, fr.AdminPassword)
	}
	flags := storeArgs(cfg)
	fmt.Fprintf(w, `
Next steps (in another terminal; every command needs the same data flags as serve):
  %[3]s client create --name my-api --json%[2]s
  curl -s -u '<client_id>:<client_secret>' -d grant_type=client_credentials %[1]s/oauth/v2/token
  curl -s -u '<client_id>:<client_secret>' -d token=<access_token> %[1]s/oauth/v2/introspect
Discovery: %[1]s/.well-known/openid-configuration
`, cfg.Issuer, flags, invokedAs())
	if strings.Contains(flags, "$SIGNET_") {
		fmt.Fprintln(w, "(export SIGNET_DB and SIGNET_MASTER_KEY with the values serve was given; they are not printed)")
	}
}

// invokedAs is how the user ran this binary: `go run ./cmd/signet` (a binary in Go's build cache)
// or the path they typed.
func invokedAs() string {
	if exe := os.Args[0]; !strings.Contains(exe, "go-build") {
		return shellQuote(exe)
	}
	return "go run ./cmd/signet"
}

// storeArgs are the flags that point a command at the same data as this server (in shell syntax,
// each with a leading space): the settings that chose the database and the master key, unless they
// were defaults. A key or password given on the command line is not repeated.
func storeArgs(cfg *config.Config) string {
	var b strings.Builder
	add := func(flag, value string) { fmt.Fprintf(&b, " --%s %s", flag, shellQuote(value)) }
	if cfg.ConfigFile != "" {
		add("config", cfg.ConfigFile)
	}
	if cfg.Source("data-dir") != "default" && cfg.Source("data-dir") != cfg.ConfigFile {
		add("data-dir", cfg.DataDir)
	}
	if cfg.DB != "" && cfg.Source("db") != cfg.ConfigFile {
		if server.RedactDSN(cfg.DB) != cfg.DB {
			b.WriteString(` --db "$SIGNET_DB"`)
		} else {
			add("db", cfg.DB)
		}
	}
	if cfg.MasterKey != "" && cfg.Source("master-key") != cfg.ConfigFile {
		b.WriteString(` --master-key "$SIGNET_MASTER_KEY"`)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
