package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/signet-id/signet/internal/audit"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "signet.db"), sqlstore.WithAuditKey(storetest.AuditKey))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopenKeepsData: a second open of the same file migrates nothing (goose's version table is
// unchanged, at the newest migration) and sees the data.
func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSetting(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := appliedMigrations(t, path)
	if len(before) == 0 || before[len(before)-1] != newestMigration(t) {
		t.Fatalf("a new database must be migrated to the newest version %s: applied %v", newestMigration(t), before)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSetting(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := appliedMigrations(t, path); !slices.Equal(after, before) {
		t.Fatalf("reopening migrated again: goose's history went from %v to %v", before, after)
	}
}

// appliedMigrations lists goose's history of the database at path, one "id:version:applied" a row.
func appliedMigrations(t *testing.T, path string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, version_id, is_applied FROM goose_db_version WHERE version_id > 0 ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, version int64
		var applied bool
		if err := rows.Scan(&id, &version, &applied); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d:%d:%t", id, version, applied))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// newestMigration is the last history row a fully migrated database has: one row per migration file.
func newestMigration(t *testing.T) string {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v", err)
	}
	var newest int64
	for _, f := range files {
		var v int64
		if _, err := fmt.Sscanf(filepath.Base(f), "%d_", &v); err != nil {
			t.Fatalf("migration file %s: %v", f, err)
		}
		newest = max(newest, v)
	}
	return fmt.Sprintf("%d:%d:true", len(files)+1, newest) // goose's row 1 is its own version 0
}

// TestUpgradeFromUnkeyedChain: a database written before the keyed chain (schema 5, SHA-256 links)
// is marked keyed from its next event by migration 6, continues under the key, and verifies.
func TestUpgradeFromUnkeyedChain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	old, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	p, err := sqlite.Migrations(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	var s *sqlstore.Store
	storetest.RunUpgrade(t, old, false, func(t *testing.T) store.Store {
		old.Close()
		if s, err = sqlite.Open(ctx, path, sqlstore.WithAuditKey(storetest.AuditKey)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	res, err := audit.Verify(ctx, s, storetest.AuditKey)
	if err != nil || !res.Intact || res.Events != 4 || res.KeyedFrom != 4 || res.Unkeyed != 3 {
		t.Fatalf("the upgraded chain must verify (3 unkeyed events, keyed from 4): %+v %v", res, err)
	}
}

// TestAuditNeedsTheKey: a store opened without the audit key reads, but refuses every audit write
// (an unkeyed event would break the chain), and writes nothing.
func TestAuditNeedsTheKey(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Now()
	for what, err := range map[string]error{
		"append": s.AppendAudit(ctx, &store.AuditEvent{At: at, Type: "x"}),
		"session with event": s.OpenExchangeSession(ctx, &store.ExchangeSession{ID: "x1", Kind: "impersonation", CreatedAt: at, ExpiresAt: at.Add(time.Minute)},
			&store.AuditEvent{At: at, Type: "exchange.allowed"}),
		"refresh rotation with event": s.RotateRefreshToken(ctx, []byte("h"), &store.Token{ID: "t2", Hash: []byte("h2"), Kind: store.TokenRefresh, ExpiresAt: at.Add(time.Hour)}, at,
			&store.AuditEvent{At: at, Type: "token.issued"}),
	} {
		if err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s without the audit key: want a refusal, got %v", what, err)
		}
	}
	if events, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(events) != 0 {
		t.Fatalf("audit log after refused writes: %d events, %v", len(events), err)
	}
	if _, err := s.GetExchangeSession(ctx, "x1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the session must not exist without its event: %v", err)
	}
}

// upgradeFixture is a fresh database file with its migration provider, for tests that migrate
// part way, store rows the old way, and upgrade; reopen opens the store on it.
func upgradeFixture(t *testing.T) (db *sql.DB, p *goose.Provider, reopen func(t *testing.T) store.Store) {
	path := filepath.Join(t.TempDir(), "signet.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if p, err = sqlite.Migrations(db); err != nil {
		t.Fatal(err)
	}
	return db, p, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}

// TestUpgradeGivesServiceAccountsTheDefaultGrants: a service account stored before accounts had
// grant allow-lists (a database migrated up to the version before 00007) comes out of the upgrade
// with client_credentials and the JWT bearer grant.
func TestUpgradeGivesServiceAccountsTheDefaultGrants(t *testing.T) {
	db, p, reopen := upgradeFixture(t)
	storetest.RunServiceAccountGrantsUpgrade(t, db, p, 7, "0", reopen) // 00007_serviceaccount_grants.sql
}

// TestUpgradeAsksNothingNewOfExistingPrincipals: users, clients and roles stored before
// interactive sign-in (a database migrated up to the version before 00011) need no password change
// or second factor and are first-party clients after the upgrade.
func TestUpgradeAsksNothingNewOfExistingPrincipals(t *testing.T) {
	db, p, reopen := upgradeFixture(t)
	storetest.RunSignInUpgrade(t, db, p, 11, "0", reopen) // 00011_signin.sql
}
