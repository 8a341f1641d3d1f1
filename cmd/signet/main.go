// Command signet is the Signet provider and its administration CLI. Commands other than serve talk
// to the store directly (same --db / --data-dir), so they work before the server runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		code := 1
		var ec *exitCode // a command that chose its status (policy check: 1 denied, 2 usage error)
		if errors.As(err, &ec) {
			code, err = ec.code, ec.err
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "signet:", err)
		}
		os.Exit(code)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "signet",
		Short:         "Signet: an OpenID Connect / OAuth 2.0 provider with honest introspection and safe token exchange",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.Flags(root.PersistentFlags())
	root.PersistentFlags().Bool("json", false, "print machine-readable JSON")
	root.AddCommand(serveCmd(), versionCmd())
	addAdminCommands(root)
	return root
}

// jsonOutput reports whether --json was given.
func jsonOutput(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openServer loads the configuration and assembles the provider without serving (for commands).
func openServer(cmd *cobra.Command) (*server.Server, error) {
	cfg, err := config.Load(cmd.Flags())
	if err != nil {
		return nil, err
	}
	s, err := server.Open(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
	if err != nil {
		return nil, err
	}
	if _, err := s.Keys.Ensure(cmd.Context(), cfg.SigningAlg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		RunE: func(cmd *cobra.Command, args []string) error {
			if jsonOutput(cmd) {
				return printJSON(cmd.OutOrStdout(), map[string]string{"version": version})
			}
			fmt.Fprintln(cmd.OutOrStdout(), "signet", version)
			return nil
		},
	}
}
