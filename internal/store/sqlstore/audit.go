package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// AppendAudit chains events onto the store's audit chain with the audit key (HMAC-SHA-256) and
// inserts them, through the group-commit writer: concurrent appends share one transaction and one
// fsync, and each caller returns only once its events are committed.
func (s *Store) AppendAudit(ctx context.Context, events ...*store.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.batch.Do(ctx, &Write{What: "append audit event", Audit: events})
}

// OpenExchangeSession records the event and the session in one batched transaction.
func (s *Store) OpenExchangeSession(ctx context.Context, x *store.ExchangeSession, event *store.AuditEvent) error {
	return s.batch.Do(ctx, &Write{
		What: "exchange session " + x.ID,
		Stmts: []Stmt{{
			Query: `INSERT INTO exchange_sessions (` + sessionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			Args:  []any{x.ID, x.Kind, x.Actor, x.Subject, x.Client, x.Rule, x.Reason, ts(x.CreatedAt), ts(x.ExpiresAt), ts(x.EndedAt), x.EndedBy},
		}},
		Audit: []*store.AuditEvent{event},
	})
}

// errNoAuditKey refuses audit writes from a store opened without the audit key: an unkeyed event
// after keyed ones would break the chain.
var errNoAuditKey = errors.New("append audit event: the store was opened without the audit key")

const auditCols = `seq, chain, chain_seq, at, type, actor, subject, client, details, prev_hash, hash`

// ListAudit returns events matching f, oldest first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) { where = append(where, cond); args = append(args, arg) }
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Subject != "" {
		add("subject = ?", f.Subject)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if !f.Since.IsZero() {
		add("at >= ?", ts(f.Since))
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	order := " ORDER BY seq"
	if f.InChain != nil {
		add("chain = ?", f.InChain.Chain)
		add("chain_seq > ?", f.InChain.Position)
		order = " ORDER BY chain_seq"
	}
	q := `SELECT ` + auditCols + ` FROM audit_events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += order
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := s.R.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		var details string
		if err := rows.Scan(&e.Seq, &e.Chain, &e.Position, &at, &e.Type, &e.Actor, &e.Subject, &e.Client, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		e.At, e.Details = fromTS(at), []byte(details)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditChains lists every registered chain and every chain that holds events, by name.
func (s *Store) AuditChains(ctx context.Context) ([]store.AuditChain, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT id, chain_seq, hash, opened_at, updated_at FROM audit_chains`)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	defer rows.Close()
	var out []store.AuditChain
	registered := map[string]bool{}
	for rows.Next() {
		c := store.AuditChain{Registered: true}
		var opened, updated int64
		if err := rows.Scan(&c.ID, &c.Position, &c.Hash, &opened, &updated); err != nil {
			return nil, err
		}
		c.OpenedAt, c.UpdatedAt = fromTS(opened), fromTS(updated)
		out, registered[c.ID] = append(out, c), true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	unregistered, err := s.R.QueryContext(ctx, `SELECT DISTINCT chain FROM audit_events WHERE chain NOT IN (SELECT id FROM audit_chains)`)
	if err != nil {
		return nil, fmt.Errorf("audit chains: %w", err)
	}
	defer unregistered.Close()
	for unregistered.Next() {
		var c store.AuditChain
		if err := unregistered.Scan(&c.ID); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b store.AuditChain) int { return strings.Compare(a.ID, b.ID) })
	return out, unregistered.Err()
}

// --- exchange rules and sessions ------------------------------------------------------------------

func (s *Store) ListExchangeRules(ctx context.Context) ([]store.ExchangeRule, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT name, body, updated_at FROM exchange_rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("exchange rules: %w", err)
	}
	defer rows.Close()
	var out []store.ExchangeRule
	for rows.Next() {
		var r store.ExchangeRule
		var body string
		var updated int64
		if err := rows.Scan(&r.Name, &body, &updated); err != nil {
			return nil, err
		}
		r.Body, r.UpdatedAt = []byte(body), fromTS(updated)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *Store) PutExchangeRule(ctx context.Context, r *store.ExchangeRule) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO exchange_rules (name, body, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`, r.Name, string(r.Body), ts(r.UpdatedAt)); err != nil {
			return err
		}
		return t.change(store.ChangeExchangeRule, r.Name)
	}), "exchange rule "+r.Name)
}

func (s *Store) DeleteExchangeRule(ctx context.Context, name string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`DELETE FROM exchange_rules WHERE name = ?`, name)
		if err := mustAffect(res, err, "exchange rule "+name); err != nil {
			return err
		}
		return t.change(store.ChangeExchangeRule, name)
	}), "delete exchange rule "+name)
}

const sessionCols = `id, kind, actor, subject, client, rule, reason, created_at, expires_at, ended_at, ended_by`

func scanSession(sc scanner) (*store.ExchangeSession, error) {
	var x store.ExchangeSession
	var created, expires, ended int64
	if err := sc.Scan(&x.ID, &x.Kind, &x.Actor, &x.Subject, &x.Client, &x.Rule, &x.Reason, &created, &expires, &ended, &x.EndedBy); err != nil {
		return nil, err
	}
	x.CreatedAt, x.ExpiresAt, x.EndedAt = fromTS(created), fromTS(expires), fromTS(ended)
	return &x, nil
}

func (s *Store) GetExchangeSession(ctx context.Context, id string) (*store.ExchangeSession, error) {
	x, err := scanSession(s.R.QueryRowContext(ctx, s.q(`SELECT `+sessionCols+` FROM exchange_sessions WHERE id = ?`), id))
	return x, s.mapErr(err, "exchange session "+id)
}

func (s *Store) ListExchangeSessions(ctx context.Context, activeAt time.Time) ([]store.ExchangeSession, error) {
	q, args := `SELECT `+sessionCols+` FROM exchange_sessions`, []any{}
	if !activeAt.IsZero() {
		q += ` WHERE ended_at = 0 AND expires_at > ?`
		args = append(args, ts(activeAt))
	}
	rows, err := s.R.QueryContext(ctx, s.q(q+` ORDER BY created_at, id`), args...)
	if err != nil {
		return nil, fmt.Errorf("exchange sessions: %w", err)
	}
	defer rows.Close()
	var out []store.ExchangeSession
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *x)
	}
	return out, rows.Err()
}

func (s *Store) EndExchangeSession(ctx context.Context, id, by string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE exchange_sessions SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at = 0`), ts(at), by, id)
	return s.mapErr(mustAffect(res, err, "active exchange session "+id), "end exchange session")
}
