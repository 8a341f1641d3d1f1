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

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/config"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/server"
	"github.com/signet-id/signet/internal/store/backends"
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

Restore into a fresh data directory, which also verifies the copy's audit chain with its key:
  signet restore --from FILE --data-dir NEW
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
				fmt.Fprintf(w, "Restore: signet restore --from %s --data-dir NEW && signet serve --data-dir NEW\n", shellQuote(out))
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

type restoreView struct {
	Database  string `json:"database"`
	MasterKey string `json:"master_key,omitempty"` // where the key was written, when it came from FILE.master.key
	Events    int    `json:"audit_events"`
	Intact    bool   `json:"audit_intact"`
}

// restoreCmd puts a backup into a fresh data directory (never over an existing database) with its
// master key, then opens it and verifies the audit chain with that key.
func restoreCmd() *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "restore --from FILE --data-dir NEW",
		Short: "Restore a `signet backup` into a fresh data directory and verify it (same keys, clients, audit chain)",
		Long: `Restore a SQLite backup written by ` + "`signet backup --out FILE`" + ` into a fresh data directory:
FILE becomes <data-dir>/signet.db and FILE.master.key <data-dir>/master.key (or give the key with
--master-key / SIGNET_MASTER_KEY when it was not copied). An existing database is never overwritten.
The restored copy is opened with the key and its audit chain verified; then start the server on it
with the same --data-dir.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return usageError(errors.New("--from is required: the file `signet backup --out` wrote"))
			}
			cfg, err := config.Load(cmd.Flags())
			if err != nil {
				return err
			}
			dsn := cfg.DSN()
			if !strings.HasPrefix(dsn, "sqlite:") {
				return fmt.Errorf("signet restore writes SQLite data directories; for PostgreSQL (%s) use pg_restore into an empty database", cfg.Source("db"))
			}
			if exists, err := backends.Exists(cmd.Context(), dsn); err != nil {
				return err
			} else if exists {
				return fmt.Errorf("%s already holds a Signet database: restore into a fresh data directory (--data-dir NEW), never over live data", dsn)
			}
			v := restoreView{Database: strings.TrimPrefix(dsn, "sqlite:")}
			keyFile := from + ".master.key"
			if cfg.MasterKey == "" {
				if _, err := os.Stat(secrets.MasterKeyPath(cfg.DataDir)); err == nil {
					return fmt.Errorf("%s already exists: restore into a fresh data directory", secrets.MasterKeyPath(cfg.DataDir))
				}
				key, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("the backup's master key: %w (a backup made with a key from --master-key or SIGNET_MASTER_KEY needs that key again)", err)
				}
				if _, err := secrets.ParseMasterKey(string(key)); err != nil {
					return fmt.Errorf("%s: %w", keyFile, err)
				}
				if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
					return err
				}
				if err := writeKeyFile(secrets.MasterKeyPath(cfg.DataDir), key, true); err != nil {
					return err
				}
				v.MasterKey = secrets.MasterKeyPath(cfg.DataDir)
			}
			if err := copyPrivate(from, v.Database); err != nil {
				return err
			}
			// Open checks the key's fingerprint against the one the database recorded.
			s, err := server.Open(cmd.Context(), cfg, newLogger(cfg, os.Stderr))
			if err != nil {
				return fmt.Errorf("the restored copy does not open: %w", err)
			}
			defer s.Close()
			res, err := audit.Verify(cmd.Context(), s.Store, s.Secrets.AuditKey())
			if err != nil {
				return err
			}
			v.Events, v.Intact = res.Events, res.Intact
			if err := output(cmd, v, func(w io.Writer) {
				fmt.Fprintf(w, "Restored %s into %s; audit log: %d events, intact: %v.\n", from, v.Database, v.Events, v.Intact)
				fmt.Fprintf(w, "Start the server on it: signet serve --data-dir %s\n", shellQuote(cfg.DataDir))
			}); err != nil {
				return err
			}
			if !res.Intact {
				return fmt.Errorf("the restored audit log is broken at event %d: %s", res.Seq, res.Reason)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the database copy `signet backup --out` wrote (required); FILE.master.key beside it is used when present")
	return cmd
}

// copyPrivate copies a file to a new file readable by its owner only (0600), syncing it to disk.
func copyPrivate(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
