// Package sqlstore implements store.Store once, over database/sql, for every SQL backend. A small
// Dialect carries what differs (placeholders, error codes, notifications); the sqlite and postgres
// packages open connections, run their migrations and hand them here. It holds no protocol logic.
package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Dialect is what differs between SQL backends.
type Dialect struct {
	Name string
	// Positional rewrites "?" placeholders (PostgreSQL: $1, $2, …); nil keeps "?".
	Positional bool
	// IsUnique reports a unique-constraint violation.
	IsUnique func(error) bool
	// Committer, when set, runs the group-commit writer's batches (PostgreSQL: pipelined); nil runs
	// them through database/sql on the write pool.
	Committer func() Committer
	// AfterChange runs in a transaction that appended changes (PostgreSQL: NOTIFY); may be nil.
	AfterChange func(ctx context.Context, tx *sql.Tx) error
}

// Store is the shared implementation. Writes go to W, reads to R (the same pool on PostgreSQL; one
// writer connection and a reader pool on SQLite).
type Store struct {
	W, R    *sql.DB
	d       Dialect
	batch   *Batcher
	queries sync.Map // query text → rebound text
	onClose []func() // backend helpers to stop before the pools close

	// auditKey chains audit events (HMAC-SHA-256); without it AppendAudit refuses to write, so no
	// unkeyed event can follow keyed ones. auditChain names the chain this store's writer appends to.
	auditKey   []byte
	auditChain string
}

// Option configures a store when it is opened.
type Option func(*Store)

// WithAuditKey gives the store the audit chain's key (secrets.Keys.AuditKey). A store opened without
// it reads everything but cannot append audit events.
func WithAuditKey(key []byte) Option {
	return func(s *Store) { s.auditKey = bytes.Clone(key) }
}

// WithAuditChain names the audit chain the store appends to (see store.AuditEvent): one per writer
// that may write at the same time as others. SQLite has one writer and one chain, "".
func WithAuditChain(name string) Option {
	return func(s *Store) { s.auditChain = name }
}

// New returns a store over open, migrated databases.
func New(w, r *sql.DB, d Dialect, opts ...Option) *Store {
	s := &Store{W: w, R: r, d: d}
	for _, o := range opts {
		o(s)
	}
	s.batch = s.newBatcher(s.auditChain)
	return s
}

// newBatcher starts a group-commit writer appending audit events to the named chain.
func (s *Store) newBatcher(chainID string) *Batcher {
	c := NewSQLCommitter(s.W)
	if s.d.Committer != nil {
		c = s.d.Committer()
	}
	b := &Batcher{c: c, max: 256, q: s.q, mapErr: s.mapErr, done: make(chan struct{}), stopped: make(chan struct{})}
	b.reqs = make(chan *batchItem, b.max*4)
	if len(s.auditKey) > 0 {
		b.chain = &chain{id: chainID, key: s.auditKey, q: s.q, read: s.readChainHead, seqOf: s.auditSeq}
	}
	go b.run()
	return b
}

// SealLegacyChain makes sure the chain "" ends with a keyed event when this store appends to
// another chain (PostgreSQL: one chain per writer). When chain "" ends with events written before
// the keyed chain (plain SHA-256), the keyed event's HMAC covers the last unkeyed hash, so rewriting
// the old events breaks a link (on SQLite the store's own next event does that). When chain "" is
// empty, the keyed event takes its first position, so that nobody without the key can add a
// "history from before the keyed chain" there later. Replicas sealing at once add one event each,
// which is harmless.
func (s *Store) SealLegacyChain(ctx context.Context) error {
	if s.auditChain == "" || len(s.auditKey) == 0 {
		return nil
	}
	head, err := s.readChainHead(ctx, "")
	if err != nil {
		return err
	}
	v, err := s.GetSetting(ctx, store.AuditKeyedFromSetting)
	if errors.Is(err, store.ErrNotFound) {
		return nil // verification reports the missing marker
	}
	if err != nil {
		return err
	}
	from, err := strconv.ParseInt(v, 10, 64)
	if err != nil || head.position >= from {
		return nil // sealed already, or a marker verification will report
	}
	reason := `{"reason":"no event was written before the keyed chain; each writer appends to its own chain"}`
	if head.position > 0 {
		reason = fmt.Sprintf(`{"reason":"events 1-%d were written before the keyed chain; from now on each writer appends to its own chain"}`, head.position)
	}
	b := s.newBatcher("")
	defer b.Close()
	return b.Do(ctx, &Write{What: "seal the audit chain", Audit: []*store.AuditEvent{{At: time.Now(), Type: "audit.sealed", Actor: "signet", Details: []byte(reason)}}})
}

// Batcher exposes the group-commit writer (for append-only logs that want it too).
func (s *Store) Batcher() *Batcher { return s.batch }

// BatchStats reports the group-commit writer's transactions and the writes they carried (metrics).
func (s *Store) BatchStats() (commits, items uint64) { return s.batch.Stats() }

// q returns the query in the dialect's placeholder style.
func (s *Store) q(query string) string {
	if !s.d.Positional {
		return query
	}
	if v, ok := s.queries.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	s.queries.Store(query, b.String())
	return b.String()
}

// Close stops the batcher and closes the databases.
// OnClose registers f to run when the store closes, before its pools (a backend's background work).
func (s *Store) OnClose(f func()) { s.onClose = append(s.onClose, f) }

func (s *Store) Close() error {
	for _, f := range s.onClose {
		f()
	}
	s.batch.Close()
	err := s.W.Close()
	if s.R != s.W {
		err = errors.Join(err, s.R.Close())
	}
	return err
}

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.W.PingContext(ctx); err != nil {
		return err
	}
	return s.R.PingContext(ctx)
}

// --- encoding helpers -------------------------------------------------------------------------

func ts(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromTS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func list(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func fromList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decoding list column: %w", err)
	}
	return v, nil
}

func bytesOrNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// mapErr turns driver errors into store errors.
func (s *Store) mapErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	case s.d.IsUnique(err):
		return fmt.Errorf("%s: %w", what, store.ErrConflict)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// --- transactions and the change feed ---------------------------------------------------------

// tx runs fn in a write transaction; changes appended with change() are committed with it.
// A transaction that meets a pooled connection the server terminated meanwhile (PostgreSQL restarted,
// an administrator or a failover ended it) is run once more on another: the server ended it before
// COMMIT, so nothing of it happened. An error from COMMIT itself is never retried.
func (s *Store) tx(ctx context.Context, fn func(t *txn) error) error {
	err, retry := s.txOnce(ctx, fn)
	if retry {
		err, _ = s.txOnce(ctx, fn)
	}
	return err
}

func (s *Store) txOnce(ctx context.Context, fn func(t *txn) error) (err error, retry bool) {
	sqlTx, err := s.W.BeginTx(ctx, nil)
	if err != nil {
		return err, terminated(err)
	}
	t := &txn{s: s, tx: sqlTx, ctx: ctx}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
		return err, terminated(err)
	}
	if t.changed && s.d.AfterChange != nil {
		if err := s.d.AfterChange(ctx, sqlTx); err != nil {
			sqlTx.Rollback()
			return err, terminated(err)
		}
	}
	return sqlTx.Commit(), false
}

// terminated reports that the server ended the connection (SQLSTATE 57P01–57P03: administrator
// command, crash shutdown, cannot connect now) or that the pool handed out a dead one.
func terminated(err error) bool {
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		return strings.HasPrefix(state.SQLState(), "57P0")
	}
	return errors.Is(err, driver.ErrBadConn)
}

type txn struct {
	s       *Store
	tx      *sql.Tx
	ctx     context.Context
	changed bool
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(t.ctx, t.s.q(query), args...)
}

// change appends to the change feed.
func (t *txn) change(kind, key string) error {
	t.changed = true
	_, err := t.exec(`INSERT INTO changes (kind, key, at) VALUES (?, ?, ?)`, kind, key, ts(time.Now()))
	return err
}

// mustAffect returns ErrNotFound when an update touched no row.
func mustAffect(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}

// Changes returns changes after afterSeq, oldest first.
func (s *Store) Changes(ctx context.Context, afterSeq int64, limit int) ([]store.Change, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT seq, kind, key, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?`), afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("changes: %w", err)
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		var at int64
		if err := rows.Scan(&c.Seq, &c.Kind, &c.Key, &at); err != nil {
			return nil, err
		}
		c.At = fromTS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// LastChangeSeq returns the newest change's sequence number (0 when there is none).
func (s *Store) LastChangeSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.R.QueryRowContext(ctx, `SELECT MAX(seq) FROM changes`).Scan(&seq)
	return seq.Int64, err
}

// --- settings -----------------------------------------------------------------------------------

func (s *Store) GetSetting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.R.QueryRowContext(ctx, s.q(`SELECT value FROM settings WHERE name = ?`), name).Scan(&v)
	return v, s.mapErr(err, "setting "+name)
}

func (s *Store) PutSetting(ctx context.Context, name, value string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
			return err
		}
		return t.change(store.ChangeSetting, name)
	}), "setting "+name)
}

// CreateSetting stores a setting only if it does not exist yet (ErrConflict otherwise): replicas
// starting together agree on the first value written.
func (s *Store) CreateSetting(ctx context.Context, name, value string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO settings (name, value) VALUES (?, ?)`, name, value); err != nil {
			return err
		}
		return t.change(store.ChangeSetting, name)
	}), "setting "+name)
}

// Prune deletes what can no longer matter. Browser sessions are kept 30 days after they expired or
// ended (a user's list of recent sign-ins), and the clients they signed in to go with them; failure
// counts a day after their window started.
func (s *Store) Prune(ctx context.Context, now time.Time) (int, error) {
	total := 0
	monthAgo := ts(now.Add(-30 * 24 * time.Hour))
	for _, q := range []struct {
		query string
		args  []any
	}{
		{`DELETE FROM tokens WHERE expires_at < ?`, []any{ts(now.Add(-time.Hour))}},
		{`DELETE FROM assertion_ids WHERE expires_at < ?`, []any{ts(now)}},
		{`DELETE FROM revocations WHERE expires_at < ?`, []any{ts(now)}},
		{`DELETE FROM changes WHERE at < ?`, []any{ts(now.Add(-time.Hour))}},
		{`DELETE FROM exchange_sessions WHERE expires_at < ?`, []any{monthAgo}},
		{`DELETE FROM login_requests WHERE expires_at < ?`, []any{ts(now.Add(-time.Hour))}},
		{`DELETE FROM auth_codes WHERE expires_at < ?`, []any{ts(now.Add(-time.Hour))}},
		{`DELETE FROM browser_sessions WHERE expires_at < ? OR (ended_at <> 0 AND ended_at < ?)`, []any{monthAgo, monthAgo}},
		{`DELETE FROM session_clients WHERE NOT EXISTS (SELECT 1 FROM browser_sessions b WHERE b.id = session_clients.session_id)`, nil},
		{`DELETE FROM signin_failures WHERE window_start < ?`, []any{ts(now.Add(-24 * time.Hour))}},
	} {
		res, err := s.W.ExecContext(ctx, s.q(q.query), q.args...)
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		n, _ := res.RowsAffected()
		total += int(n)
	}
	return total, nil
}

var _ store.Store = (*Store)(nil)
