package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "signet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopenKeepsData: a second open of the same file migrates nothing and sees the data.
func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signet.db")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.PutSetting(ctx, "k", "v")
	s.Close()
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.GetSetting(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
}

// TestUpgradeGivesServiceAccountsTheDefaultGrants: a service account stored before accounts had
// grant allow-lists (a database migrated up to the version before 00007) comes out of the upgrade
// with client_credentials and the JWT bearer grant, what it was made for.
func TestUpgradeGivesServiceAccountsTheDefaultGrants(t *testing.T) {
	const grantsVersion = 7 // migrations/00007_serviceaccount_grants.sql
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "signet.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	var before int64 // the newest migration below ours (other branches may fill the gaps)
	found := false
	for _, src := range p.ListSources() {
		if src.Version < grantsVersion {
			before = max(before, src.Version)
		}
		found = found || src.Version == grantsVersion
	}
	if !found || before == 0 {
		t.Fatalf("migration %d or its predecessor is missing: %v", grantsVersion, p.ListSources())
	}
	if _, err := p.UpTo(ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO service_accounts (id, name, description, disabled, created_at, updated_at)
		VALUES ('sa-old', 'old-bot', '', 0, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.GetServiceAccount(ctx, "sa-old")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"}
	if !slices.Equal(a.GrantTypes, want) {
		t.Fatalf("after the upgrade the account may use %v; want %v", a.GrantTypes, want)
	}
}
