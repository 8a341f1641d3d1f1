// Package sqlite opens Signet's embedded SQLite store: modernc.org/sqlite (pure Go), WAL, a busy
// timeout, one writer connection and a reader pool, and the embedded migrations. The queries are
// sqlstore's.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"runtime"

	"github.com/pressly/goose/v3"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signet-id/signet/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) and migrates the database file at path.
func Open(ctx context.Context, path string) (*sqlstore.Store, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_txlock=immediate" +
		"&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	// synchronous(FULL): every commit fsyncs the WAL, so a write acknowledged (an audit event, a
	// rotated refresh token) survives power loss, not only a crash of the process. The group-commit
	// batcher makes that one fsync per batch of concurrent writes.
	w, err := sql.Open("sqlite", dsn+"&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1) // SQLite has one writer; queueing here beats SQLITE_BUSY
	r, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)*2))
	r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)*2))
	if err := migrate(ctx, w); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	return sqlstore.New(w, r, sqlstore.Dialect{Name: "sqlite", IsUnique: isUnique}), nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating the SQLite database: %w", err)
	}
	return nil
}

func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code()
	return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}
