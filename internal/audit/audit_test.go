package audit_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func logWith(t *testing.T, n int) (*audit.Log, *sqlstore.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), sqlstore.WithAuditKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := audit.New(st)
	for i := range n {
		if err := l.Record(context.Background(), audit.Event{Type: audit.TypeExchangeAllowed, Actor: "sam", Subject: "dana", Client: "spa",
			Details: map[string]any{"i": i, "reason": "ticket"}}); err != nil {
			t.Fatal(err)
		}
	}
	return l, st
}

// TestVerifyNamesTheFirstBrokenLink edits, deletes and rewrites rows behind Signet's back.
func TestVerifyNamesTheFirstBrokenLink(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper string
		seq    int64
		reason string
	}{
		{"untouched", "", 0, ""},
		{"edited details", `UPDATE audit_events SET details = '{"i":3,"reason":"nothing to see"}' WHERE seq = 4`, 4, "modified"},
		{"edited actor", `UPDATE audit_events SET actor = 'someone-else' WHERE seq = 7`, 7, "modified"},
		{"deleted row", `DELETE FROM audit_events WHERE seq = 5`, 5, "missing"},
		{"deleted and renumbered", `DELETE FROM audit_events WHERE seq = 5; UPDATE audit_events SET seq = seq - 1 WHERE seq > 5`, 5, "does not link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := logWith(t, 10)
			if tc.tamper != "" {
				if _, err := st.W.Exec(tc.tamper); err != nil {
					t.Fatal(err)
				}
			}
			res, err := audit.Verify(ctx, st, testKey)
			if err != nil {
				t.Fatal(err)
			}
			if tc.tamper == "" {
				if !res.Intact || res.Events != 10 {
					t.Fatalf("untouched log: %+v", res)
				}
				return
			}
			if res.Intact || res.Seq != tc.seq || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("want broken at %d (%s), got %+v", tc.seq, tc.reason, res)
			}
		})
	}
}
