// Package backends opens the store a DSN names: "sqlite:<path>" (or a plain path) or a
// "postgres://" URL.
package backends

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to look without migrating

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

// Open opens and migrates the store named by dsn; opts configure it (sqlstore.WithAuditKey to write
// audit events).
func Open(ctx context.Context, dsn string, opts ...sqlstore.Option) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, opts...)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), opts...)
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("database %q: use sqlite:<path> or postgres://…", dsn)
	case dsn == "":
		return nil, fmt.Errorf("no database given: use sqlite:<path> or postgres://…")
	default:
		return sqlite.Open(ctx, dsn, opts...)
	}
}

// Exists reports whether dsn names a Signet store that has been created (by `signet serve`): the
// SQLite file exists, or the PostgreSQL schema holds Signet's migration table. It creates nothing.
func Exists(ctx context.Context, dsn string) (bool, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return false, fmt.Errorf("PostgreSQL DSN: %w", err)
		}
		q := u.Query()
		q.Del("pool_max_conns") // Signet's own parameter; PostgreSQL does not know it
		u.RawQuery = q.Encode()
		db, err := sql.Open("pgx", u.String())
		if err != nil {
			return false, err
		}
		defer db.Close()
		var found bool
		if err := db.QueryRowContext(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&found); err != nil {
			return false, fmt.Errorf("connecting to PostgreSQL: %w", err)
		}
		return found, nil
	case strings.Contains(dsn, "://") || dsn == "":
		_, err := Open(ctx, dsn) // explains the DSN
		return false, err
	}
	fi, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	return fi.Size() > 0, nil
}
