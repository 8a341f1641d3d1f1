package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/store"
)

const tokenCols = `hash, id, kind, client_id, subject_kind, subject, scope, audience, issued_at, expires_at, revoked_at, grant_id, session_id, claims`

// CreateToken stores an opaque token through the group-commit batcher.
func (s *Store) CreateToken(ctx context.Context, tk *store.Token) error {
	query := s.q(`INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	args := []any{tk.Hash, tk.ID, tk.Kind, tk.ClientID, string(tk.SubjectKind), tk.Subject, list(tk.Scope), list(tk.Audience),
		ts(tk.IssuedAt), ts(tk.ExpiresAt), ts(tk.RevokedAt), tk.GrantID, tk.SessionID, bytesOrNil(tk.Claims)}
	return s.insertOnce(ctx, query, args, "token "+tk.ID)
}

// insertOnce runs an INSERT … ON CONFLICT DO NOTHING in a batch; no row inserted is ErrConflict.
func (s *Store) insertOnce(ctx context.Context, query string, args []any, what string) error {
	stmt, err := s.prepared(ctx, query)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.batch.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err != nil {
			return s.mapErr(err, what)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s: %w", what, store.ErrConflict)
		}
		return nil
	})
}

func scanToken(sc scanner) (*store.Token, error) {
	var t store.Token
	var kind, scope, aud string
	var issued, expires, revoked int64
	if err := sc.Scan(&t.Hash, &t.ID, &t.Kind, &t.ClientID, &kind, &t.Subject, &scope, &aud, &issued, &expires, &revoked, &t.GrantID, &t.SessionID, &t.Claims); err != nil {
		return nil, err
	}
	t.SubjectKind, t.IssuedAt, t.ExpiresAt, t.RevokedAt = store.PrincipalKind(kind), fromTS(issued), fromTS(expires), fromTS(revoked)
	var err error
	if t.Scope, err = fromList(scope); err != nil {
		return nil, err
	}
	t.Audience, err = fromList(aud)
	return &t, err
}

func (s *Store) GetToken(ctx context.Context, hash []byte) (*store.Token, error) {
	t, err := scanToken(s.R.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM tokens WHERE hash = ?`), hash))
	return t, s.mapErr(err, "token")
}

func (s *Store) GetTokenByID(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.R.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
	return t, s.mapErr(err, "token "+id)
}

// AddRevocation records a revocation (and marks a stored token revoked for kind jti).
func (s *Store) AddRevocation(ctx context.Context, r *store.Revocation) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO revocations (kind, value, at, expires_at, reason) VALUES (?, ?, ?, ?, ?)`,
			r.Kind, r.Value, ts(r.At), ts(r.ExpiresAt), r.Reason); err != nil {
			return err
		}
		if r.Kind == store.RevokeTokenID {
			if _, err := t.exec(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, ts(r.At), r.Value); err != nil {
				return err
			}
		}
		return t.change(store.ChangeRevocation, r.Kind+":"+r.Value)
	}), "add revocation")
}

func (s *Store) ListRevocations(ctx context.Context, now time.Time) ([]store.Revocation, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT kind, value, at, expires_at, reason FROM revocations WHERE expires_at >= ? ORDER BY at`), ts(now))
	if err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		var at, exp int64
		if err := rows.Scan(&r.Kind, &r.Value, &at, &exp, &r.Reason); err != nil {
			return nil, err
		}
		r.At, r.ExpiresAt = fromTS(at), fromTS(exp)
		out = append(out, r)
	}
	return out, rows.Err()
}

// UseAssertionID records (issuer, jti) once, through the batcher.
func (s *Store) UseAssertionID(ctx context.Context, issuer, jti string, exp time.Time) error {
	query := s.q(`INSERT INTO assertion_ids (issuer, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`)
	return s.insertOnce(ctx, query, []any{issuer, jti, ts(exp)}, "assertion jti")
}
