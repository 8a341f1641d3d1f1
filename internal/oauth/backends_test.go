package oauth_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/testenv"
)

// onBackends runs f on each backend, "sqlite" and "postgres"; f starts its providers with
// dsnFor(t, backend).
func onBackends(t *testing.T, f func(t *testing.T, backend string)) {
	t.Helper()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { f(t, backend) })
	}
}

// dsnFor returns the DSN of a fresh database on backend: empty for SQLite (a temp dir), a schema of
// its own for PostgreSQL.
func dsnFor(t testing.TB, backend string) string {
	t.Helper()
	if backend == "postgres" {
		return testenv.PostgresDSN(t)
	}
	return ""
}

// forgetRevocations deletes every revocation entry and reloads the server's set, as pruning does
// once an entry expires: what must stay refused afterwards rests on the lasting records (the
// session's end, the kill switch), not on the entry.
func forgetRevocations(t *testing.T, env *testenv.Env) {
	t.Helper()
	var w *sql.DB
	switch s := env.Server.Store.(type) {
	case *sqlstore.Store:
		w = s.W
	case *postgres.Store:
		w = s.W
	default:
		t.Fatalf("unknown store %T", s)
	}
	ctx := context.Background()
	if _, err := w.ExecContext(ctx, "DELETE FROM revocations"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Tokens.LoadRevocations(ctx); err != nil {
		t.Fatal(err)
	}
}
