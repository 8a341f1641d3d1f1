// Command signet is the Signet provider and its administration CLI. Commands other than serve talk
// to the store directly (same --data-dir, --db or --config as serve), so they work while the server
// is stopped; only serve creates a store.
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
	cmd, err := newRoot().ExecuteContextC(ctx)
	stop()
	if err != nil {
		os.Exit(reportError(cmd, os.Stderr, err))
	}
}

// Exit statuses: 0 success (allowed, active), 1 a failure or a negative answer (denied, inactive),
// 2 a usage error (unknown command or flag, a flag value that does not parse, wrong arguments).
const (
	exitNegative = 1
	exitUsage    = 2
)

// exitCode is an error that sets signet's exit status. A command that printed a negative answer
// (token explain: inactive; policy check: denied) returns answeredNo(), which prints nothing more;
// usageError marks a mistake in how signet was called.
type exitCode struct {
	code int
	err  error // printed when not nil
}

func (e *exitCode) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCode) Unwrap() error { return e.err }

// answeredNo is the error of a command that printed a negative answer: exit status 1, no message.
func answeredNo() error { return &exitCode{code: exitNegative} }

// usageError marks err as a mistake in how signet was called: exit status 2.
func usageError(err error) error { return &exitCode{code: exitUsage, err: err} }

// reportError prints err (as {"error":…} under --json) to w and returns the exit status.
func reportError(cmd *cobra.Command, w io.Writer, err error) int {
	code, msg := 1, err.Error()
	var ec *exitCode
	if errors.As(err, &ec) {
		code = ec.code
		if ec.err == nil {
			return code
		}
		msg = ec.err.Error()
	}
	if cmd != nil && jsonOutput(cmd) {
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	} else {
		fmt.Fprintln(w, "signet:", msg)
	}
	return code
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "signet",
		Short:         "Signet: an OpenID Connect / OAuth 2.0 provider with honest introspection and safe token exchange",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	config.StoreFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(serveCmd(), versionCmd(), backupCmd(), restoreCmd())
	addAdminCommands(root)
	finishTree(root)
	return root
}

// finishTree gives every command that prints something --json, makes a command group refuse an
// unknown subcommand (exit 2, instead of printing help and succeeding), and turns argument errors
// into usage errors.
func finishTree(c *cobra.Command) {
	for _, sub := range c.Commands() {
		finishTree(sub)
	}
	switch {
	case c.HasSubCommands() && c.Run == nil && c.RunE == nil:
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unknown command %q for %q (see `%s --help`)", args[0], c.CommandPath(), c.CommandPath()))
			}
			return c.Help()
		}
	case c.Name() != "serve":
		c.Flags().Bool("json", false, "print machine-readable JSON (errors too, as {\"error\":…} on stderr)")
	}
	if args := c.Args; args != nil {
		c.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
}

// jsonOutput reports whether --json was given.
func jsonOutput(cmd *cobra.Command) bool {
	f := cmd.Flags().Lookup("json")
	return f != nil && f.Value.String() == "true"
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel)) // config.Load accepted only debug, info, warn, error
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
	s, err := server.OpenExisting(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
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
