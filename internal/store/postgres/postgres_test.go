package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

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
	if err := postgres.MigrateTo(context.Background(), old, 4); err != nil {
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
