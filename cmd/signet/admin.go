package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store"
)

// addAdminCommands registers the commands that manage Signet's data.
func addAdminCommands(root *cobra.Command) {
	root.AddCommand(clientCmd(), serviceAccountCmd(), roleCmd(), userCmd(), keysCmd(), tokenCmd(),
		policyCmd(), impersonationCmd(), auditCmd())
}

// withServer opens the provider for one command and closes it afterwards.
func withServer(fn func(cmd *cobra.Command, args []string, s *server.Server) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := openServer(cmd)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(cmd, args, s)
	}
}

// table prints rows with aligned columns.
func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// output prints v as JSON with --json, else runs text.
func output(cmd *cobra.Command, v any, text func(w io.Writer)) error {
	if jsonOutput(cmd) {
		return printJSON(cmd.OutOrStdout(), v)
	}
	text(cmd.OutOrStdout())
	return nil
}

// explainStoreErr turns store errors into messages that say what to do.
func explainStoreErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%s already exists: choose another name or ID", what)
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%s not found", what)
	}
	return err
}

// findServiceAccount accepts an ID or a name.
func findServiceAccount(ctx context.Context, s *server.Server, ref string) (*store.ServiceAccount, error) {
	sa, err := s.Store.GetServiceAccount(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		sa, err = s.Store.GetServiceAccountByName(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no service account with ID or name %q (see `signet serviceaccount list`)", ref)
	}
	return sa, err
}

// findUser accepts an ID or a username.
func findUser(ctx context.Context, s *server.Server, ref string) (*store.User, error) {
	u, err := s.Store.GetUser(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		u, err = s.Store.GetUserByUsername(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no user with ID or username %q (see `signet user list`)", ref)
	}
	return u, err
}

// findClient looks a client up by ID.
func findClient(ctx context.Context, s *server.Server, id string) (*store.Client, error) {
	c, err := s.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no client with ID %q (see `signet client list`)", id)
	}
	return c, err
}

// parseExpiry reads --expires (a date or RFC 3339 time) or --expires-in (a duration).
func parseExpiry(at, in string, now time.Time) (time.Time, error) {
	switch {
	case at != "" && in != "":
		return time.Time{}, errors.New("use --expires or --expires-in, not both")
	case in != "":
		d, err := time.ParseDuration(in)
		if err != nil || d <= 0 {
			return time.Time{}, fmt.Errorf("--expires-in %q: use a positive duration such as 720h", in)
		}
		return now.Add(d), nil
	case at != "":
		for _, layout := range []string{time.RFC3339, "2006-01-02"} {
			if t, err := time.Parse(layout, at); err == nil {
				if !t.After(now) {
					return time.Time{}, fmt.Errorf("--expires %s is in the past", at)
				}
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("--expires %q: use YYYY-MM-DD or RFC 3339", at)
	}
	return time.Time{}, nil
}

// writeKeyFile writes a key file with mode 0600, refusing to overwrite one, or to write inside a git
// work tree (where a private key is one `git add .` from being published), unless force is set.
func writeKeyFile(path string, data []byte, force bool) error {
	if root := gitWorkTree(path); root != "" && !force {
		return fmt.Errorf("%s is inside the git work tree %s, where a private key is easily committed: write it elsewhere (e.g. --out ~/.config/signet/key.json) or pass --force", path, root)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; pass --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// gitWorkTree returns the root of the git work tree that would contain path, or "".
func gitWorkTree(path string) string {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
