package audit_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signet-id/signet/internal/audit"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/internal/store/sqlstore"
)

var (
	ctx      = context.Background()
	testKey  = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
)

// logWith opens a real SQLite store with the audit key and records n events through the log.
func logWith(t *testing.T, n int) (*audit.Log, *sqlstore.Store) {
	t.Helper()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"), sqlstore.WithAuditKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := audit.New(st)
	record(t, l, 0, n)
	return l, st
}

func record(t *testing.T, l *audit.Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Record(ctx, audit.Event{Type: audit.TypeExchangeAllowed, Actor: "sam", Subject: "dana", Client: "spa",
			Details: map[string]any{"i": i, "reason": "ticket"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func exec(t *testing.T, st *sqlstore.Store, query string, args ...any) {
	t.Helper()
	if _, err := st.W.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func verify(t *testing.T, st *sqlstore.Store, key []byte, anchors ...audit.Anchor) *audit.Result {
	t.Helper()
	res, err := audit.Verify(ctx, st, key, anchors...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantBroken(t *testing.T, res *audit.Result, seq int64, reason string) {
	t.Helper()
	if res.Intact || res.Seq != seq || !strings.Contains(res.Reason, reason) {
		t.Fatalf("want broken at %d (%q), got %+v", seq, reason, res)
	}
}

// canonical is the byte layout docs/audit.md describes, written here from the description: each
// field quoted and followed by a line feed, then the details as stored. An attacker can compute it
// too; what they lack is the key.
func canonical(e *store.AuditEvent) []byte {
	var b bytes.Buffer
	for _, f := range []string{strconv.FormatInt(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), e.Type, e.Actor, e.Subject, e.Client} {
		b.WriteString(strconv.Quote(f) + "\n")
	}
	b.Write(e.Details)
	return b.Bytes()
}

func sha256Link(prev []byte, e *store.AuditEvent) []byte {
	h := sha256.Sum256(append(bytes.Clone(prev), canonical(e)...))
	return h[:]
}

func hmacLink(key []byte) func(prev []byte, e *store.AuditEvent) []byte {
	return func(prev []byte, e *store.AuditEvent) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(prev)
		m.Write(canonical(e))
		return m.Sum(nil)
	}
}

// rehash does what someone with write access to the database can: recompute prev_hash and hash of
// every event from seq on with link, so that the chain is consistent again under that function, and
// register the new head as the writer would.
func rehash(t *testing.T, st *sqlstore.Store, from int64, link func(prev []byte, e *store.AuditEvent) []byte) {
	t.Helper()
	events, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	prev := []byte{}
	for i := range events {
		e := &events[i]
		if e.Seq >= from {
			e.PrevHash, e.Hash = prev, link(prev, e)
			exec(t, st, `UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?`, e.PrevHash, e.Hash, e.Seq)
		}
		prev = e.Hash
	}
	register(t, st)
}

// register records chain ""'s newest event as its head, as the migration and the writer do.
func register(t *testing.T, st *sqlstore.Store) {
	t.Helper()
	exec(t, st, `INSERT INTO audit_chains (id, chain_seq, hash, opened_at, updated_at)
		SELECT '', chain_seq, hash, 0, 0 FROM audit_events WHERE chain = '' ORDER BY chain_seq DESC LIMIT 1
		ON CONFLICT (id) DO UPDATE SET chain_seq = excluded.chain_seq, hash = excluded.hash`)
}

func setMarker(t *testing.T, st *sqlstore.Store, v string) {
	t.Helper()
	exec(t, st, `UPDATE settings SET value = ? WHERE name = ?`, v, store.AuditKeyedFromSetting)
}

// TestVerifyNamesTheFirstBrokenLink edits every stored field, and deletes or reorders rows, behind
// Signet's back: verification names the first event that no longer holds.
func TestVerifyNamesTheFirstBrokenLink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper string
		seq    int64
		reason string
	}{
		{"edited type", `UPDATE audit_events SET type = 'exchange.denied' WHERE seq = 3`, 3, "modified"},
		{"edited time", `UPDATE audit_events SET at = at + 1 WHERE seq = 3`, 3, "modified"},
		{"edited actor", `UPDATE audit_events SET actor = 'someone-else' WHERE seq = 7`, 7, "modified"},
		{"edited subject", `UPDATE audit_events SET subject = 'eve' WHERE seq = 2`, 2, "modified"},
		{"edited client", `UPDATE audit_events SET client = 'cli' WHERE seq = 10`, 10, "modified"},
		{"edited details", `UPDATE audit_events SET details = '{"i":3,"reason":"nothing to see"}' WHERE seq = 4`, 4, "modified"},
		{"details re-spaced", `UPDATE audit_events SET details = replace(details, ',', ', ') WHERE seq = 4`, 4, "modified"},
		{"edited hash", `UPDATE audit_events SET hash = zeroblob(32) WHERE seq = 6`, 6, "modified"},
		{"prev_hash points elsewhere", `UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE seq = 4) WHERE seq = 6`, 6, "does not link"},
		{"sequence renumbered", `UPDATE audit_events SET chain_seq = 11 WHERE seq = 10; UPDATE audit_events SET chain_seq = 10 WHERE seq = 9`, 9, "missing"},
		{"two events swapped", `UPDATE audit_events SET chain_seq = 100 WHERE seq = 4; UPDATE audit_events SET chain_seq = 4 WHERE seq = 5; UPDATE audit_events SET chain_seq = 5 WHERE seq = 4`, 4, "does not link"},
		{"first event deleted", `DELETE FROM audit_events WHERE seq = 1`, 1, "missing"},
		{"middle event deleted", `DELETE FROM audit_events WHERE seq = 5`, 5, "missing"},
		{"deleted and renumbered", `DELETE FROM audit_events WHERE seq = 5; UPDATE audit_events SET chain_seq = chain_seq - 1 WHERE seq > 5`, 5, "does not link"},
		// The HMAC covers the sequence number: renumbering the rest after deleting the first event,
		// with the new first event's link emptied, leaves no gap and no broken link, only the HMAC.
		{"first deleted, renumbered and relinked", `DELETE FROM audit_events WHERE seq = 1; UPDATE audit_events SET chain_seq = chain_seq - 1; UPDATE audit_events SET prev_hash = x'' WHERE chain_seq = 1`, 1, "modified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := logWith(t, 10)
			if res := verify(t, st, testKey); !res.Intact || res.Events != 10 {
				t.Fatalf("before tampering: %+v", res)
			}
			exec(t, st, tc.tamper)
			wantBroken(t, verify(t, st, testKey), tc.seq, tc.reason)
		})
	}
}

// TestVerifyReportsTheHead: an intact log reports its newest event, with an anchor that verifies.
func TestVerifyReportsTheHead(t *testing.T) {
	_, st := logWith(t, 3)
	res := verify(t, st, testKey)
	events, _ := st.ListAudit(ctx, store.AuditFilter{})
	if !res.Intact || res.Events != 3 || res.KeyedFrom != 1 || res.Unkeyed != 0 || res.Head == nil ||
		res.Head.Seq != 3 || res.Head.Hash != fmt.Sprintf("%x", events[2].Hash) {
		t.Fatalf("result: %+v head %+v", res, res.Head)
	}
	a, err := audit.ParseAnchor(res.Head.Anchor)
	if err != nil || a.Seq != 3 || !bytes.Equal(a.Hash, events[2].Hash) {
		t.Fatalf("anchor %q: %+v %v", res.Head.Anchor, a, err)
	}
	if res := verify(t, st, testKey, a); !res.Intact {
		t.Fatalf("its own anchor: %+v", res)
	}
}

// TestTailDeletionNeedsAnAnchor: deleting the newest events is caught by the head the writer
// registered; deleting them and rewinding the registration leaves a valid, shorter chain (the
// documented limit), which an anchor taken before catches.
func TestTailDeletionNeedsAnAnchor(t *testing.T) {
	_, st := logWith(t, 10)
	anchor := audit.NewAnchor(testKey, "", verify(t, st, testKey).Head.Seq, mustHead(t, st))
	exec(t, st, `DELETE FROM audit_events WHERE seq >= 9`)
	wantBroken(t, verify(t, st, testKey), 9, "registered event 10 as its head")
	register(t, st)
	if res := verify(t, st, testKey); !res.Intact || res.Events != 8 {
		t.Fatalf("the chain alone cannot see a shortened tail with its registration rewound: %+v", res)
	}
	wantBroken(t, verify(t, st, testKey, anchor), 9, "deleted from the end")
}

func mustHead(t *testing.T, st *sqlstore.Store) []byte {
	t.Helper()
	events, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil || len(events) == 0 {
		t.Fatal("no events", err)
	}
	return events[len(events)-1].Hash
}

// TestAnchorsMustBeSignets: an anchor whose tag was not made with this audit key is refused, and
// one that does not match its event reveals a rewrite.
func TestAnchorsMustBeSignets(t *testing.T) {
	_, st := logWith(t, 4)
	head := mustHead(t, st)
	wantBroken(t, verify(t, st, testKey, audit.NewAnchor(otherKey, "", 4, head)), 4, "not made with this master key")
	wantBroken(t, verify(t, st, testKey, audit.NewAnchor(testKey, "", 3, head)), 3, "does not match its anchor")
	for _, s := range []string{"", "4", "x:00:00", "4:zz:00", "4:" + strings.Repeat("00", 32) + ":00", "0:" + strings.Repeat("00", 32) + ":" + strings.Repeat("00", 16)} {
		if _, err := audit.ParseAnchor(s); err == nil {
			t.Errorf("ParseAnchor(%q) accepted a malformed anchor", s)
		}
	}
}

// TestRehashingWithoutTheKeyIsDetected: whoever can write the database but lacks the key edits an
// event and re-hashes the rest of the chain so every link is consistent again — with plain
// SHA-256, as the chain was before, or with an HMAC under a key of their own. Both are found at the
// edited event.
func TestRehashingWithoutTheKeyIsDetected(t *testing.T) {
	for name, link := range map[string]func([]byte, *store.AuditEvent) []byte{
		"SHA-256":         sha256Link,
		"HMAC, other key": hmacLink(otherKey),
	} {
		t.Run(name, func(t *testing.T) {
			_, st := logWith(t, 10)
			exec(t, st, `UPDATE audit_events SET details = '{"i":3,"reason":"nothing to see"}' WHERE seq = 4`)
			rehash(t, st, 4, link)
			wantBroken(t, verify(t, st, testKey), 4, "modified")
		})
	}
	// The same rewrite with the right key is what Signet itself would write: the check is the key.
	_, st := logWith(t, 10)
	exec(t, st, `UPDATE audit_events SET details = '{"i":3,"reason":"nothing to see"}' WHERE seq = 4`)
	rehash(t, st, 4, hmacLink(testKey))
	if res := verify(t, st, testKey); !res.Intact {
		t.Fatalf("a rewrite with the key is indistinguishable (the key is the secret): %+v", res)
	}
}

// TestWrongMasterKeyIsDetected: the same log verified with another master key's audit key fails at
// the first keyed event.
func TestWrongMasterKeyIsDetected(t *testing.T) {
	_, st := logWith(t, 3)
	wantBroken(t, verify(t, st, otherKey), 1, "another master key")
	if _, err := audit.Verify(ctx, st, nil); err != audit.ErrNoKey {
		t.Fatalf("verify without a key: %v", err)
	}
}

// upgraded returns a store whose first n events were written before the keyed chain (plain
// SHA-256), marked as the keyed-chain migration marks it, followed by m events written now.
func upgraded(t *testing.T, n, m int) (*audit.Log, *sqlstore.Store) {
	t.Helper()
	l, st := logWith(t, 0)
	prev := []byte{}
	at := time.Date(2026, 1, 2, 3, 4, 5, 678000, time.UTC)
	for i := 1; i <= n; i++ {
		e := &store.AuditEvent{Seq: int64(i), At: at.Add(time.Duration(i) * time.Minute), Type: audit.TypeTokenIssued, Actor: "cli:ops", Subject: "u1",
			Details: []byte(fmt.Sprintf(`{"jti":"j%d"}`, i))}
		e.PrevHash, e.Hash = prev, sha256Link(prev, e)
		exec(t, st, `INSERT INTO audit_events (seq, chain_seq, at, type, actor, subject, client, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.Seq, e.At.UnixMicro(), e.Type, e.Actor, e.Subject, e.Client, string(e.Details), e.PrevHash, e.Hash)
		prev = e.Hash
	}
	setMarker(t, st, strconv.Itoa(n+1))
	if n > 0 {
		register(t, st) // as the migration does
	}
	record(t, l, n, m)
	return l, st
}

// TestUpgradedLogVerifies: an unkeyed history followed by keyed events verifies, and says which
// events predate the keyed chain.
func TestUpgradedLogVerifies(t *testing.T) {
	_, st := upgraded(t, 4, 4)
	res := verify(t, st, testKey)
	if !res.Intact || res.Events != 8 || res.Unkeyed != 4 || res.KeyedFrom != 5 || res.Head == nil || res.Head.Seq != 8 {
		t.Fatalf("upgraded log: %+v", res)
	}
	_, st = upgraded(t, 4, 0)
	if res := verify(t, st, testKey); !res.Intact || res.Events != 4 || res.Unkeyed != 4 || res.KeyedFrom != 5 {
		t.Fatalf("upgraded log before its first keyed event: %+v", res)
	}
}

// TestUpgradedLogTampering: edits are found in both segments; re-hashing the unkeyed prefix (which
// needs no key) is caught by the first keyed event, whose HMAC covers the last unkeyed hash.
func TestUpgradedLogTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, st *sqlstore.Store)
		seq    int64
		reason string
	}{
		{"unkeyed event edited", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `UPDATE audit_events SET actor = 'cli:eve' WHERE seq = 2`)
		}, 2, "modified"},
		{"unkeyed event deleted", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `DELETE FROM audit_events WHERE seq = 3`)
		}, 3, "missing"},
		{"unkeyed prefix edited and re-hashed", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `UPDATE audit_events SET actor = 'cli:eve' WHERE seq = 2`)
			rehash(t, st, 2, func(prev []byte, e *store.AuditEvent) []byte {
				if e.Seq < 5 {
					return sha256Link(prev, e)
				}
				return e.Hash // the keyed events cannot be re-hashed without the key
			})
		}, 5, "modified"},
		{"unkeyed prefix re-hashed, first keyed link left alone", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `UPDATE audit_events SET actor = 'cli:eve' WHERE seq = 2`)
			events, _ := st.ListAudit(ctx, store.AuditFilter{})
			prev := events[0].Hash
			for _, e := range events[1:4] {
				e.PrevHash, e.Hash = prev, sha256Link(prev, &e)
				exec(t, st, `UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?`, e.PrevHash, e.Hash, e.Seq)
				prev = e.Hash
			}
		}, 5, "does not link"},
		{"keyed event edited", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `UPDATE audit_events SET subject = 'eve' WHERE seq = 6`)
		}, 6, "modified"},
		{"keyed event edited and re-hashed unkeyed", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `UPDATE audit_events SET subject = 'eve' WHERE seq = 6`)
			rehash(t, st, 6, sha256Link)
		}, 6, "modified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := upgraded(t, 4, 4)
			tc.tamper(t, st)
			wantBroken(t, verify(t, st, testKey), tc.seq, tc.reason)
		})
	}
}

// TestForgedMarkerCannotDowngradeKeyedEvents moves the keyed-from marker so that keyed events would
// be checked unkeyed (and re-hashes them with SHA-256 to match), or removes it: every variant inside
// the chain breaks a link, because each keyed HMAC covers the hash before it.
func TestForgedMarkerCannotDowngradeKeyedEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, st *sqlstore.Store)
		seq    int64
		reason string
	}{
		{"moved later", func(t *testing.T, st *sqlstore.Store) { setMarker(t, st, "7") }, 5, "modified"},
		{"moved later, skipped events re-hashed unkeyed", func(t *testing.T, st *sqlstore.Store) {
			setMarker(t, st, "7")
			exec(t, st, `UPDATE audit_events SET subject = 'eve' WHERE seq = 5`)
			rehash(t, st, 5, func(prev []byte, e *store.AuditEvent) []byte {
				if e.Seq < 7 {
					return sha256Link(prev, e)
				}
				return e.Hash
			})
		}, 7, "modified"},
		{"moved earlier", func(t *testing.T, st *sqlstore.Store) { setMarker(t, st, "3") }, 3, "modified"},
		{"moved past the head", func(t *testing.T, st *sqlstore.Store) { setMarker(t, st, "100") }, 5, "modified"},
		{"moved past the head, everything re-hashed unkeyed", func(t *testing.T, st *sqlstore.Store) {
			setMarker(t, st, "10")
			rehash(t, st, 5, sha256Link)
		}, 9, "marker"},
		{"deleted", func(t *testing.T, st *sqlstore.Store) {
			exec(t, st, `DELETE FROM settings WHERE name = ?`, store.AuditKeyedFromSetting)
		}, 0, "missing"},
		{"not a number", func(t *testing.T, st *sqlstore.Store) { setMarker(t, st, "five") }, 0, "altered"},
		{"zero", func(t *testing.T, st *sqlstore.Store) { setMarker(t, st, "0") }, 0, "altered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, st := upgraded(t, 4, 4)
			tc.tamper(t, st)
			wantBroken(t, verify(t, st, testKey), tc.seq, tc.reason)
		})
	}
}

// TestWholeLogRewrittenUnkeyedNeedsAnAnchor is the limit docs/audit.md states: rewriting every
// event with SHA-256 and marking the chain keyed from after the newest one makes the database look
// as if it had never been upgraded, which the database alone cannot refute. The result then says
// every event is unkeyed, and an anchor kept outside the database catches it.
func TestWholeLogRewrittenUnkeyedNeedsAnAnchor(t *testing.T) {
	_, st := upgraded(t, 4, 4)
	anchor := audit.NewAnchor(testKey, "", 8, mustHead(t, st))
	exec(t, st, `UPDATE audit_events SET subject = 'eve' WHERE seq = 6`)
	setMarker(t, st, "9")
	rehash(t, st, 5, sha256Link)
	res := verify(t, st, testKey)
	if !res.Intact || res.Unkeyed != res.Events || res.KeyedFrom != 9 {
		t.Fatalf("without an anchor the rewrite shows only as a log with no keyed event: %+v", res)
	}
	wantBroken(t, verify(t, st, testKey, anchor), 8, "does not match its anchor")
}
