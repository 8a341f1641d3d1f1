package audit_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store/postgres"
	"github.com/signet-id/signet/internal/store/sqlstore"
	"github.com/signet-id/signet/internal/testenv"
)

// replicas opens two PostgreSQL stores on one database, each appending to its own chain, and has
// them write n events each at the same time.
func replicas(t *testing.T, n int) (a, b *postgres.Store, db *sql.DB) {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	open := func(chain string) *postgres.Store {
		s, err := postgres.Open(ctx, dsn, sqlstore.WithAuditKey(testKey), sqlstore.WithAuditChain(chain))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b = open("replica-a"), open("replica-b")
	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b} {
		l := audit.New(s)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := l.Record(ctx, audit.Event{Type: audit.TypeTokenIssued, Actor: "cli:ops", Details: map[string]int{"i": i}}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	return a, b, a.W
}

// TestChainsPerReplicaVerify: two replicas append concurrently, each to its own chain, without
// waiting for each other; verify walks both, reports both heads with anchors, and each anchor
// verifies.
func TestChainsPerReplicaVerify(t *testing.T) {
	a, _, _ := replicas(t, 40)
	res := verify(t, a.Store, testKey)
	if !res.Intact || res.Events != 80 || len(res.Chains) != 2 || res.Head == nil {
		t.Fatalf("two replicas' chains: %+v", res)
	}
	var anchors []audit.Anchor
	for i, h := range res.Chains {
		want := []string{"replica-a", "replica-b"}[i]
		if h.Chain != want || h.Position != 40 || h.Events != 40 || !strings.HasPrefix(h.Anchor, want+"@40:") {
			t.Fatalf("chain %d: %+v, want %s ending at event 40", i, h, want)
		}
		an, err := audit.ParseAnchor(h.Anchor)
		if err != nil || an.Chain != want || an.Seq != 40 {
			t.Fatalf("anchor %q: %+v %v", h.Anchor, an, err)
		}
		anchors = append(anchors, an)
	}
	if res := verify(t, a.Store, testKey, anchors...); !res.Intact {
		t.Fatalf("their own anchors: %+v", res)
	}
	// An anchor names its chain: the same position and hash claimed for the other chain is refused.
	swapped := anchors[0]
	swapped.Chain = "replica-b"
	if res := verify(t, a.Store, testKey, swapped); res.Intact || !strings.Contains(res.Reason, "not made with this master key") {
		t.Fatalf("an anchor moved to another chain: %+v", res)
	}
}

// TestChainsPerReplicaTampering: what someone with write access to the database can do to one
// chain of several is found in that chain.
func TestChainsPerReplicaTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		chain  string
		reason string
	}{
		{"event edited", func(t *testing.T, db *sql.DB) {
			pgExec(t, db, `UPDATE audit_events SET actor = 'eve' WHERE chain = 'replica-b' AND chain_seq = 7`)
		}, "replica-b", "modified"},
		{"event moved to the other chain", func(t *testing.T, db *sql.DB) {
			// The last event of replica-a becomes the next of replica-b, heads registered to match.
			pgExec(t, db, `UPDATE audit_events SET chain = 'replica-b', chain_seq = 11 WHERE chain = 'replica-a' AND chain_seq = 10`)
			pgExec(t, db, `UPDATE audit_chains SET chain_seq = 9, hash = (SELECT hash FROM audit_events WHERE chain = 'replica-a' AND chain_seq = 9) WHERE id = 'replica-a'`)
			pgExec(t, db, `UPDATE audit_chains SET chain_seq = 11, hash = (SELECT hash FROM audit_events WHERE chain = 'replica-b' AND chain_seq = 11) WHERE id = 'replica-b'`)
		}, "replica-b", "does not link"},
		{"chain renamed", func(t *testing.T, db *sql.DB) {
			pgExec(t, db, `UPDATE audit_events SET chain = 'replica-c' WHERE chain = 'replica-b'`)
			pgExec(t, db, `UPDATE audit_chains SET id = 'replica-c' WHERE id = 'replica-b'`)
		}, "replica-c", "does not start chain"},
		{"tail deleted", func(t *testing.T, db *sql.DB) {
			pgExec(t, db, `DELETE FROM audit_events WHERE chain = 'replica-a' AND chain_seq > 8`)
		}, "replica-a", "registered event 10 as its head"},
		{"chain deleted, registration kept", func(t *testing.T, db *sql.DB) {
			pgExec(t, db, `DELETE FROM audit_events WHERE chain = 'replica-b'`)
		}, "replica-b", "ends at event 0"},
		{"registration deleted", func(t *testing.T, db *sql.DB) {
			pgExec(t, db, `DELETE FROM audit_chains WHERE id = 'replica-a'`)
		}, "replica-a", "not registered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, db := replicas(t, 10)
			if res := verify(t, a.Store, testKey); !res.Intact {
				t.Fatalf("before tampering: %+v", res)
			}
			tc.tamper(t, db)
			res := verify(t, a.Store, testKey)
			if res.Intact || res.Chain != tc.chain || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("want chain %s broken (%q), got %+v", tc.chain, tc.reason, res)
			}
		})
	}
}

// TestChainDeletedWholeNeedsAnAnchor: deleting a chain with its registration leaves the other
// chains valid — the limit anchors close: an anchor of the deleted chain reports it gone.
func TestChainDeletedWholeNeedsAnAnchor(t *testing.T) {
	a, _, db := replicas(t, 5)
	var anchor audit.Anchor
	for _, h := range verify(t, a.Store, testKey).Chains {
		if h.Chain == "replica-b" {
			anchor, _ = audit.ParseAnchor(h.Anchor)
		}
	}
	pgExec(t, db, `DELETE FROM audit_events WHERE chain = 'replica-b'`)
	pgExec(t, db, `DELETE FROM audit_chains WHERE id = 'replica-b'`)
	if res := verify(t, a.Store, testKey); !res.Intact || len(res.Chains) != 1 {
		t.Fatalf("without an anchor a chain deleted whole leaves the others valid: %+v", res)
	}
	res := verify(t, a.Store, testKey, anchor)
	if res.Intact || !strings.Contains(res.Reason, `chain "replica-b" is gone`) {
		t.Fatalf("the anchor must reveal the deleted chain: %+v", res)
	}
}

// TestWritersOfOneChainTakeTurns: two writers that share a chain by mistake (one name) never fork
// it: a writer whose head is stale finds the registration moved, reads the head again and retries.
func TestWritersOfOneChainTakeTurns(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	var wg sync.WaitGroup
	var stores []*postgres.Store
	for range 2 {
		s, err := postgres.Open(ctx, dsn, sqlstore.WithAuditKey(testKey), sqlstore.WithAuditChain("same"))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- audit.New(stores[i%2]).Record(ctx, audit.Event{Type: audit.TypeTokenIssued, Details: map[string]int{"i": i}})
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	res := verify(t, stores[0].Store, testKey)
	if !res.Intact || len(res.Chains) != 1 || res.Events != 60-failed {
		t.Fatalf("one chain written by two writers: %+v (%d writes failed)", res, failed)
	}
	if failed > 0 {
		t.Logf("%d of 60 writes gave up after the head moved %d times in a row", failed, 5)
	}
}

func pgExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(fmt.Errorf("%s: %w", q, err))
	}
}
