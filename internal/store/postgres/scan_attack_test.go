package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// TestAttackAuditChainsScansTheWholeLog (fixed): the webhook deliverer lists the chains on every
// poll and every wake, on every replica. Finding chains that hold events but no registration needs
// the whole log, and only verification asks for them; the registered chains alone must not read the
// log at all, however long it grows. With the log's table out of the way, the registry still lists.
func TestAttackAuditChainsScansTheWholeLog(t *testing.T) {
	s, _, _ := attackStore(t)
	ctx := context.Background()
	if err := s.AppendAudit(ctx, &store.AuditEvent{At: time.Now(), Type: "token.issued"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.W.ExecContext(ctx, `ALTER TABLE audit_events RENAME TO audit_events_away`); err != nil {
		t.Fatal(err)
	}
	defer s.W.ExecContext(ctx, `ALTER TABLE audit_events_away RENAME TO audit_events`)
	chains, err := s.AuditChains(ctx, false)
	if err != nil || len(chains) != 2 || chains[1].ID != "attacked" || chains[1].Position != 1 {
		t.Fatalf("the registered chains, without reading the log: %+v %v", chains, err)
	}
	if _, err := s.AuditChains(ctx, true); err == nil {
		t.Fatal("listing unregistered chains too must read the log (the table is away)")
	}
}
