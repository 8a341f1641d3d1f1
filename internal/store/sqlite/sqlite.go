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
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/signet-id/signet/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open opens (creating if needed) and migrates the database file at path; opts configure the store
// (sqlstore.WithAuditKey to write audit events).
func Open(ctx context.Context, path string, opts ...sqlstore.Option) (*sqlstore.Store, error) {
	if err := makePrivate(path); err != nil {
		return nil, err
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?_txlock=immediate" +
		"&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	// synchronous(FULL): every commit fsyncs the WAL, so a write acknowledged (an audit event, a
	// rotated refresh token) survives power loss, not only a crash of the process. The group-commit
	// batcher makes that one fsync per batch of concurrent writes.
	// The writer checkpoints only as a safety net (a WAL of 10,000 pages, 40 MB): the checkpointer
	// below does it in the background, so no request's commit pays for copying the log.
	w, err := sql.Open("sqlite", dsn+"&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(10000)")
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
	// One writer, one audit chain: "" (whatever the options say).
	st := sqlstore.New(w, r, sqlstore.Dialect{Name: "sqlite", IsUnique: isUnique}, append(opts, sqlstore.WithAuditChain(""))...)
	if stop, err := startCheckpointer(dsn+"&_pragma=synchronous(FULL)", checkpointEvery); err == nil {
		st.OnClose(stop)
	} else {
		st.Close()
		return nil, fmt.Errorf("checkpointer: %w", err)
	}
	return st, nil
}

// makePrivate creates the database file readable and writable by its owner only (0600, whatever the
// umask), and takes group and other permissions away from the database and from -wal and -shm files
// an earlier run left: they hold password hashes and the audit log. SQLite gives the -wal and -shm
// files it creates later the database file's permissions, whatever the umask, so they are private too.
func makePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		err = f.Chmod(0o600) // the umask may have removed the owner's bits
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("creating the database file: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("creating the database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
			if err := os.Chmod(p, perm&0o600); err != nil {
				return fmt.Errorf("making %s private: %w", p, err)
			}
			slog.Warn("restricted a database file to read and write by its owner only", "file", p,
				"was", fmt.Sprintf("%#o", perm), "now", fmt.Sprintf("%#o", perm&0o600))
		}
	}
	return nil
}

// checkpointEvery is how often the WAL is copied into the database file: often enough that each
// checkpoint is small (measured: 250 ms doubled the exchange p99, 50 ms did not).
const checkpointEvery = 50 * time.Millisecond

// startCheckpointer copies committed WAL frames into the database file from its own connection,
// without blocking the writer or readers (PRAGMA wal_checkpoint(PASSIVE)). Left to the writer,
// every thousandth page would make one request's commit also copy and fsync the log: a latency
// spike at the tail.
func startCheckpointer(dsn string, every time.Duration) (stop func(), err error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)") // a failure is retried on the next tick
			}
		}
	}()
	return func() { cancel(); <-done; db.Close() }, nil
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
