// Package postgres opens Signet's PostgreSQL store (pgx through database/sql), runs the embedded
// migrations, and pushes change notifications with LISTEN/NOTIFY so replicas refresh their caches at
// once. The queries are sqlstore's.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/signet-id/signet/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Channel is the NOTIFY channel of the change feed.
const Channel = "signet_changes"

// Store is the shared SQL store plus change notifications.
type Store struct {
	*sqlstore.Store
	dsn string
}

// Open connects and migrates; opts configure the store (sqlstore.WithAuditKey to write audit events).
func Open(ctx context.Context, dsn string, opts ...sqlstore.Option) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating the PostgreSQL database: %w", err)
	}
	s := sqlstore.New(db, db, sqlstore.Dialect{
		Name: "postgres", Positional: true, IsUnique: isUnique,
		LockAudit: `SELECT pg_advisory_xact_lock(7355608)`, // one audit chain writer at a time across replicas
		AfterChange: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_notify('`+Channel+`', '')`)
			return err
		},
	}, opts...)
	return &Store{Store: s, dsn: dsn}, nil
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// WatchChanges listens on the change channel with a dedicated connection and calls wake for every
// notification, and once after connecting (to catch up on anything missed while disconnected).
func (s *Store) WatchChanges(ctx context.Context, wake func()) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	wake()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wake()
	}
}
