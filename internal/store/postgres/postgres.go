// Package postgres opens Signet's PostgreSQL store (pgx through database/sql), runs the embedded
// migrations, and pushes change notifications with LISTEN/NOTIFY so replicas refresh their caches at
// once. The queries are sqlstore's.
package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

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

// Open connects and migrates; opts configure the store (sqlstore.WithAuditKey to write audit events,
// sqlstore.WithAuditChain to name its audit chain: by default the host name and the process ID, so
// that every process appends to a chain of its own and none waits for another).
func Open(ctx context.Context, dsn string, opts ...sqlstore.Option) (*Store, error) {
	opts = append([]sqlstore.Option{sqlstore.WithAuditChain(DefaultAuditChain())}, opts...)
	dsn, maxConns, err := poolSize(dsn)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	withDeadlines(cfg)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, err
	}
	// Replicas starting together migrate one at a time: a session-level advisory lock named after the
	// schema (so separate schemas, as in tests, do not wait for each other).
	var schema string
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("PostgreSQL schema: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID(schema)), lock.WithLockTimeout(1, 300))
	if err != nil {
		db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating the PostgreSQL database: %w", err)
	}
	writerCfg := cfg.Copy()
	s := sqlstore.New(db, db, sqlstore.Dialect{
		Name: "postgres", Positional: true, IsUnique: isUnique,
		Committer: func() sqlstore.Committer { return newPipeline(writerCfg) },
		AfterChange: func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `SELECT pg_notify('`+Channel+`', '')`)
			return err
		},
	}, opts...)
	if err := s.SealLegacyChain(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sealing the audit log's unkeyed events: %w", err)
	}
	return &Store{Store: s, dsn: dsn}, nil
}

// DefaultAuditChain names the audit chain of a store this process opens: host name, process ID and
// a random instance tag ("db-7/4182/9f3a61c2"), so that no two writers share a chain by accident —
// containers that all run as PID 1 under one configured host name included. A process that
// restarts starts a new chain; chains are cheap, and verification walks them all.
func DefaultAuditChain() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	tag := make([]byte, 4)
	rand.Read(tag)
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(tag)
}

// Session settings that keep one frozen or partitioned replica from stalling the others: a wait for a
// lock (the audit chain's included) gives up after lockTimeout, a statement after statementTimeout,
// and a transaction left idle (its replica paused mid-batch) is ended by PostgreSQL after
// idleTimeout, releasing its locks. TCP keepalives on both sides notice a vanished peer in under a
// minute instead of PostgreSQL's default two hours. A value set in the DSN wins.
const (
	lockTimeout      = "5s"
	statementTimeout = "30s"
	idleTimeout      = "30s"
)

func withDeadlines(cfg *pgx.ConnConfig) {
	for k, v := range map[string]string{
		"lock_timeout": lockTimeout, "statement_timeout": statementTimeout, "idle_in_transaction_session_timeout": idleTimeout,
		"tcp_keepalives_idle": "15", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
	} {
		if _, set := cfg.RuntimeParams[k]; !set {
			cfg.RuntimeParams[k] = v
		}
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}
	cfg.DialFunc = d.DialContext
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
}

// DefaultPoolSize is how many connections a replica opens at most unless the DSN says otherwise
// (pool_max_conns=N). The group-commit writer and the change listener hold one more each. Size it
// so that replicas × (pool + 2) stays under the server's max_connections with room for
// administration.
const DefaultPoolSize = 16

// poolSize takes pool_max_conns out of the DSN (PostgreSQL does not know it).
func poolSize(dsn string) (string, int, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", 0, fmt.Errorf("PostgreSQL DSN: %w", err)
	}
	q := u.Query()
	v := q.Get("pool_max_conns")
	if v == "" {
		return dsn, DefaultPoolSize, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 2 || n > 1000 {
		return "", 0, fmt.Errorf("PostgreSQL DSN: pool_max_conns=%q: give a number of connections between 2 and 1000", v)
	}
	q.Del("pool_max_conns")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// migrationLockID is the advisory lock migrations hold, one per schema.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("signet migrations " + schema))
	return int64(h.Sum64() >> 1)
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
