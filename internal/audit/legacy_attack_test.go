package audit_test

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/testenv"
)

// TestAttackForgedLegacyChainNeedsTheSealDeleted (fixed): on PostgreSQL the replicas append to
// named chains. Someone with write access but WITHOUT the audit key wants to add a "legacy" chain ""
// — events linked with plain SHA-256, which needs no key — move the keyed-from marker past it and
// register its head, so that verify counts the events as written before the keyed chain and the next
// replica seals them. The first replica sealed chain "" with a keyed event at position 1 even though
// it held nothing, so the forgery has to delete a keyed event first, which an anchor of chain ""
// reveals (before and after a new replica seals again).
func TestAttackForgedLegacyChainNeedsTheSealDeleted(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	s, err := postgres.Open(ctx, dsn, sqlstore.WithAuditKey(testKey), sqlstore.WithAuditChain("replica-a"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := audit.New(s)
	for i := range 3 {
		if err := l.Record(ctx, audit.Event{Type: audit.TypeTokenIssued, Actor: "cli:ops", Details: map[string]int{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	before := verify(t, s.Store, testKey)
	if !before.Intact || before.KeyedFrom != 1 || before.Unkeyed != 0 || len(before.Chains) != 2 || before.Chains[0].Chain != "" {
		t.Fatalf("before: %+v", before)
	}
	// Chain "" starts with the keyed event that sealed it when the first replica opened: the place
	// a forged "history from before the keyed chain" would need is taken.
	anchor, err := audit.ParseAnchor(before.Chains[0].Anchor)
	if err != nil {
		t.Fatal(err)
	}

	// The forger's history: three unkeyed events in chain "", after deleting the seal.
	pgExec(t, s.W, `DELETE FROM audit_events WHERE chain = ''`)
	prev := []byte{}
	at := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	for pos := int64(1); pos <= 3; pos++ {
		e := &store.AuditEvent{Chain: "", Position: pos, At: at, Type: audit.TypeExchangeAllowed, Actor: "ceo", Subject: "eve",
			Client: "spa", Details: []byte(`{"reason":"approved by the CEO"}`)}
		e.Hash = store.UnkeyedChainHash(prev, e)
		pgExec(t, s.W, "INSERT INTO audit_events (seq, chain, chain_seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES "+
			sqlValues(-pos, "", pos, at.UnixMicro(), e.Type, e.Actor, e.Subject, e.Client, string(e.Details), prev, e.Hash))
		prev = e.Hash
	}
	pgExec(t, s.W, `UPDATE settings SET value = '4' WHERE name = 'audit_chain_keyed_from'`)
	pgExec(t, s.W, "UPDATE audit_chains SET chain_seq = 3, hash = "+strings.Trim(sqlValues(prev), "()")+" WHERE id = ''")

	// Deleting a keyed event is what an anchor catches, before and after a replica seals again.
	if res := verify(t, s.Store, testKey, anchor); res.Intact || !strings.Contains(res.Reason, "does not match its anchor") {
		t.Errorf("a legacy chain forged over the deleted seal verifies against the anchor: %+v", res)
	}
	s2, err := postgres.Open(ctx, dsn, sqlstore.WithAuditKey(testKey), sqlstore.WithAuditChain("replica-b"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if res := verify(t, s.Store, testKey, anchor); res.Intact {
		t.Errorf("the forged events, sealed again, verify against the anchor: %+v", res)
	}
}

// sqlValues renders a row of literals for PostgreSQL (strings quoted, []byte as bytea hex).
func sqlValues(vals ...any) string {
	var parts []string
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			parts = append(parts, "'"+strings.ReplaceAll(v, "'", "''")+"'")
		case []byte:
			parts = append(parts, "'\\x"+hexString(v)+"'::bytea")
		case int64:
			parts = append(parts, strconvI(v))
		case int:
			parts = append(parts, strconvI(int64(v)))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func hexString(b []byte) string { return hex.EncodeToString(b) }

func strconvI(v int64) string { return strconv.FormatInt(v, 10) }
