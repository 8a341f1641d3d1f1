package postgres_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/signet-id/signet/internal/changefeed"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/backends"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/store/storetest"
	"github.com/signet-id/signet/internal/testenv"
)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, sqlstore.WithAuditKey(storetest.AuditKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, testenv.PostgresDSN(t)) })
}

// TestUpgradeFromUnkeyedChain: a database written before the keyed chain (schema 4, SHA-256 links)
// is marked keyed from its next event by migration 5 and continues under the key.
func TestUpgradeFromUnkeyedChain(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	old, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	p, err := postgres.Migrations(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	storetest.RunUpgrade(t, old, true, func(t *testing.T) store.Store { return open(t, dsn) })
}

// TestNotificationsReachOtherConnections: a change made through one store wakes a watcher on
// another store sharing the database (two replicas).
func TestNotificationsReachOtherConnections(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan struct{}, 16)
	go b.WatchChanges(ctx, func() { woke <- struct{}{} })
	select {
	case <-woke: // the wake after connecting
	case <-time.After(10 * time.Second):
		t.Fatal("no wake after LISTEN")
	}
	if err := a.PutRole(ctx, &store.Role{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woke:
	case <-time.After(5 * time.Second):
		t.Fatal("the other store was not notified of the change")
	}
}

func TestBackendsOpenDispatch(t *testing.T) {
	ctx := context.Background()
	s, err := backends.Open(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, ok := s.(store.ChangeNotifier); !ok {
		t.Fatal("the PostgreSQL store must push notifications")
	}
	l, err := backends.Open(ctx, "sqlite:"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := backends.Open(ctx, "mysql://x"); err == nil {
		t.Fatal("unknown schemes must be refused")
	}
}

// upgradeFixture is a fresh schema with its migration provider, for tests that migrate part way,
// store rows the old way, and upgrade; open opens the store on it.
func upgradeFixture(t *testing.T) (db *sql.DB, p *goose.Provider, reopen func(t *testing.T) store.Store) {
	dsn := testenv.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if p, err = postgres.Migrations(db); err != nil {
		t.Fatal(err)
	}
	return db, p, func(t *testing.T) store.Store { return open(t, dsn) }
}

// TestUpgradeGivesServiceAccountsTheDefaultGrants: a service account stored before accounts had
// grant allow-lists (a schema migrated up to the version before 00006) comes out of the upgrade
// with client_credentials and the JWT bearer grant.
func TestUpgradeGivesServiceAccountsTheDefaultGrants(t *testing.T) {
	db, p, reopen := upgradeFixture(t)
	storetest.RunServiceAccountGrantsUpgrade(t, db, p, 6, "FALSE", reopen) // 00006_serviceaccount_grants.sql
}

// TestUpgradeAsksNothingNewOfExistingPrincipals: users, clients and roles stored before
// interactive sign-in (a schema migrated up to the version before 00010) need no password change
// or second factor and are first-party clients after the upgrade.
func TestUpgradeAsksNothingNewOfExistingPrincipals(t *testing.T) {
	db, p, reopen := upgradeFixture(t)
	storetest.RunSignInUpgrade(t, db, p, 10, "FALSE", reopen) // 00010_signin.sql
}

// TestChangeFeedFollowsCommitsOutOfOrder: a change numbered earlier commits after a later one was
// read (two writers, PostgreSQL's sequences are taken at insert). The watcher still delivers it.
func TestChangeFeedFollowsCommitsOutOfOrder(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	s := open(t, dsn)
	ctx := context.Background()
	w := changefeed.New(s, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var seen []string
	w.Subscribe(func(c store.Change) { seen = append(seen, c.Kind+":"+c.Key) })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	slow, err := raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback()
	// The slow writer takes its number first...
	if _, err := slow.ExecContext(ctx, `INSERT INTO changes (kind, key, at) VALUES ('user', 'u-slow', 0)`); err != nil {
		t.Fatal(err)
	}
	// ...a fast writer takes the next one and commits.
	if err := s.PutRole(ctx, &store.Role{Name: "fast"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, "role:fast") || slices.Contains(seen, "user:u-slow") || w.Gaps() != 1 {
		t.Fatalf("after the fast commit: %v, %d gaps", seen, w.Gaps())
	}
	if err := slow.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(seen, "user:u-slow") || w.Gaps() != 0 {
		t.Fatalf("the change committed late was skipped: %v", seen)
	}
}

// TestConnectionsCarryDeadlines: every connection of the store has the lock, statement and
// idle-in-transaction timeouts and keepalives that keep a frozen replica from stalling the others;
// a DSN's own value wins.
func TestConnectionsCarryDeadlines(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	s := open(t, dsn)
	ctx := context.Background()
	for setting, want := range map[string]string{"lock_timeout": "5s", "statement_timeout": "30s", "idle_in_transaction_session_timeout": "30s", "tcp_keepalives_idle": "15"} {
		var got string
		if err := s.R.QueryRowContext(ctx, "SHOW "+setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	own := open(t, dsn+"&statement_timeout=7000")
	var got string
	own.R.QueryRowContext(ctx, "SHOW statement_timeout").Scan(&got)
	if got != "7s" {
		t.Errorf("a DSN's statement_timeout must win: %q", got)
	}
	// A transaction held open longer than a lock wait allows: the second writer gives up instead of
	// hanging (the audit chain's advisory lock behaves the same).
	holder, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_xact_lock(4242)`); err != nil {
		t.Fatal(err)
	}
	other := open(t, dsn+"&lock_timeout=200")
	start := time.Now()
	_, err = other.W.ExecContext(ctx, `SELECT pg_advisory_xact_lock(4242)`)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a lock wait must end at lock_timeout: %v after %s", err, time.Since(start))
	}
}

// TestReplicasStartingTogetherMigrateOnce: several replicas opening an empty database at the same
// moment migrate it one at a time, and all of them start.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	const n = 4
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			s, err := postgres.Open(context.Background(), dsn, sqlstore.WithAuditKey(storetest.AuditKey))
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a replica failed to start: %v", err)
		}
	}
}

// TestPoolSizeFromTheDSN: pool_max_conns bounds the connections a replica opens (and never reaches
// PostgreSQL as a parameter); nonsense is refused with what to write instead.
func TestPoolSizeFromTheDSN(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	s := open(t, dsn+"&pool_max_conns=3")
	if got := s.W.Stats().MaxOpenConnections; got != 3 {
		t.Fatalf("max open connections %d, want 3", got)
	}
	if got := open(t, dsn).W.Stats().MaxOpenConnections; got != postgres.DefaultPoolSize {
		t.Fatalf("default pool %d, want %d", got, postgres.DefaultPoolSize)
	}
	if _, err := postgres.Open(context.Background(), dsn+"&pool_max_conns=lots"); err == nil || !strings.Contains(err.Error(), "between 2 and 1000") {
		t.Fatalf("a bad pool size must be refused: %v", err)
	}
}
