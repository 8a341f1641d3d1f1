package oauth_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/testenv"
)

// onBackends runs f on SQLite and on PostgreSQL (a schema of its own); db is the DSN to start the
// provider with (empty: SQLite).
func onBackends(t *testing.T, f func(t *testing.T, db string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { f(t, "") })
	t.Run("postgres", func(t *testing.T) { f(t, testenv.PostgresDSN(t)) })
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
