package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
)

type backupView struct {
	Database        string `json:"database"`
	MasterKey       string `json:"master_key,omitempty"` // the copy of master.key, when the backup includes it
	MasterKeySource string `json:"master_key_source"`    // where the server's key comes from
	Fingerprint     string `json:"master_key_fingerprint"`
}

// backupCmd copies a SQLite store while the server runs (VACUUM INTO reads one consistent snapshot
// and does not wait for writers) and the master key beside it: a database restored without its key
// cannot be read. PostgreSQL is backed up with pg_dump; the command says how and exits 1.
func backupCmd() *cobra.Command {
	var out string
	var withoutKey, force bool
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy the SQLite database consistently while the server runs, with its master key (FILE.master.key)",
		Long: `Copy the SQLite database consistently while the server runs (VACUUM INTO: one snapshot, no waiting
for the server's writers) to FILE, and the development master key to FILE.master.key (both 0600).
A key from --master-key or SIGNET_MASTER_KEY is not copied; the command names it and its fingerprint.
Without the master key a backup cannot be read: keep them together, and apart from other data.

Restore into a fresh data directory (the server stopped or not yet started there):
  mkdir -m 700 NEW && cp FILE NEW/signet.db && cp FILE.master.key NEW/master.key
  signet serve --data-dir NEW

On PostgreSQL, use pg_dump (the command prints how) and keep the master key with the dump.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError(errors.New("--out is required: the file to write the database copy to"))
			}
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			if dsn := cfg.DSN(); strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
				return pgDumpAdvice(cfg)
			}
			s, err := server.OpenExisting(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
			if err != nil {
				return err
			}
			defer s.Close()
			v := backupView{Database: out, Fingerprint: s.Secrets.Fingerprint(), MasterKeySource: cfg.Source("master-key")}
			keyOut := out + ".master.key"
			if root := gitWorkTree(out); root != "" && !force {
				return fmt.Errorf("%s is inside the git work tree %s, where a database copy and its master key are easily committed: write the backup elsewhere or pass --force", out, root)
			}
			if !force {
				for _, p := range []string{out, keyOut} {
					if _, err := os.Stat(p); err == nil {
						return fmt.Errorf("%s exists; choose another --out or pass --force to replace it", p)
					}
				}
			}
			if err := vacuumInto(cmd, strings.TrimPrefix(cfg.DSN(), "sqlite:"), out); err != nil {
				return err
			}
			if cfg.MasterKey == "" {
				v.MasterKeySource = secrets.MasterKeyPath(cfg.DataDir)
				if !withoutKey {
					key, err := os.ReadFile(secrets.MasterKeyPath(cfg.DataDir))
					if err != nil {
						return err
					}
					if err := writeKeyFile(keyOut, key, true); err != nil {
						return err
					}
					v.MasterKey = keyOut
				}
			}
			return output(cmd, v, func(w io.Writer) {
				fmt.Fprintf(w, "Database copied to %s (consistent snapshot, integrity checked).\n", out)
				if v.MasterKey != "" {
					fmt.Fprintf(w, "Master key copied to %s (fingerprint %s): keep it with the database copy and as private.\n", v.MasterKey, v.Fingerprint)
				} else {
					fmt.Fprintf(w, "The master key is NOT in this backup: it comes from %s (fingerprint %s). Keep it with the backup: without it the copy cannot be read.\n", v.MasterKeySource, v.Fingerprint)
				}
				fmt.Fprintf(w, "Restore: mkdir -m 700 NEW && cp %s NEW/signet.db", shellQuote(out))
				if v.MasterKey != "" {
					fmt.Fprintf(w, " && cp %s NEW/master.key", shellQuote(v.MasterKey))
				}
				fmt.Fprintln(w, " && signet serve --data-dir NEW")
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "file to write the database copy to (required); the master key goes to FILE.master.key")
	f.BoolVar(&withoutKey, "without-master-key", false, "do not copy master.key (back it up separately: the copy is unreadable without it)")
	f.BoolVar(&force, "force", false, "replace FILE and FILE.master.key if they exist; write inside a git work tree")
	return cmd
}

// vacuumInto writes a consistent copy of the SQLite database at path to out (0600) and checks it.
func vacuumInto(cmd *cobra.Command, path, out string) error {
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return err
	}
	// VACUUM INTO accepts an empty file: creating it first makes it private whatever the umask.
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(cmd.Context(), "VACUUM INTO ?", out); err != nil {
		os.Remove(out)
		return fmt.Errorf("copying %s: %w", path, err)
	}
	cp, err := sql.Open("sqlite", "file:"+(&url.URL{Path: out}).EscapedPath()+"?mode=ro")
	if err != nil {
		return err
	}
	defer cp.Close()
	var check string
	if err := cp.QueryRowContext(cmd.Context(), "PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		return fmt.Errorf("the copy %s failed its integrity check (%v %s); it is not a backup", out, err, check)
	}
	return nil
}

// pgDumpAdvice explains how to back up a PostgreSQL store: Signet does not reimplement pg_dump.
func pgDumpAdvice(cfg *config.Config) error {
	key := "the master key (" + cfg.Source("master-key") + ")"
	if cfg.MasterKey == "" {
		key = secrets.MasterKeyPath(cfg.DataDir)
	}
	if k, err := secrets.ReadMasterKey(cfg.MasterKey, cfg.DataDir); err == nil && k != nil {
		if sk, err := secrets.New(k); err == nil {
			key += " (fingerprint " + sk.Fingerprint() + ")"
		}
	}
	return fmt.Errorf("signet backup copies SQLite databases; this server's database is PostgreSQL (%s). Back it up with pg_dump, which takes a consistent snapshot while the server runs:\n"+
		"  pg_dump --format=custom --file signet.dump '%s'\n"+
		"and keep %s with the dump: without it the dump cannot be read. Restore with pg_restore into an empty database (see docs/operations.md, Backups)",
		cfg.Source("db"), server.RedactDSN(cfg.DB), key)
}
