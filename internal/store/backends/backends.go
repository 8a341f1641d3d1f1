// Package backends opens the store a DSN names: "sqlite:<path>" (or a plain path) or a
// "postgres://" URL.
package backends

import (
	"context"
	"fmt"
	"strings"

	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

// Open opens and migrates the store named by dsn; opts configure it (sqlstore.WithAuditKey to write
// audit events).
func Open(ctx context.Context, dsn string, opts ...sqlstore.Option) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn, opts...)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(ctx, strings.TrimPrefix(dsn, "sqlite:"), opts...)
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("database %q: use sqlite:<path> or postgres://…", dsn)
	case dsn == "":
		return nil, fmt.Errorf("no database given: use sqlite:<path> or postgres://…")
	default:
		return sqlite.Open(ctx, dsn, opts...)
	}
}
