package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/store"
)

const tokenCols = `hash, id, kind, client_id, subject_kind, subject, scope, audience, issued_at, expires_at, revoked_at, grant_id, session_id, claims, used_at`

// CreateToken stores an opaque token through the group-commit writer.
func (s *Store) CreateToken(ctx context.Context, tk *store.Token) error {
	return s.insertOnce(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, tokenArgs(tk), "token "+tk.ID)
}

func tokenArgs(tk *store.Token) []any {
	return []any{tk.Hash, tk.ID, tk.Kind, tk.ClientID, string(tk.SubjectKind), tk.Subject, list(tk.Scope), list(tk.Audience),
		ts(tk.IssuedAt), ts(tk.ExpiresAt), ts(tk.RevokedAt), tk.GrantID, tk.SessionID, bytesOrNil(tk.Claims), ts(tk.UsedAt)}
}

// insertOnce runs an INSERT through the group-commit writer; a row that exists already (a unique
// key taken) is ErrConflict, and fails this write alone.
func (s *Store) insertOnce(ctx context.Context, query string, args []any, what string) error {
	return s.batch.Do(ctx, &Write{What: what, Stmts: []Stmt{{Query: query, Args: args}}})
}

func scanToken(sc scanner) (*store.Token, error) {
	var t store.Token
	var kind, scope, aud string
	var issued, expires, revoked, used int64
	if err := sc.Scan(&t.Hash, &t.ID, &t.Kind, &t.ClientID, &kind, &t.Subject, &scope, &aud, &issued, &expires, &revoked, &t.GrantID, &t.SessionID, &t.Claims, &used); err != nil {
		return nil, err
	}
	t.SubjectKind, t.IssuedAt, t.ExpiresAt, t.RevokedAt, t.UsedAt = store.PrincipalKind(kind), fromTS(issued), fromTS(expires), fromTS(revoked), fromTS(used)
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

// revokedTokens selects the stored tokens a revocation kind marks revoked; cut-off kinds mark only
// tokens issued at or before the revocation. By grant, subject or client only refresh tokens are
// marked (partial indexes): stored access tokens expire before their revocation entry does.
var revokedTokens = map[string]struct {
	column      string
	cutoff      bool
	refreshOnly bool
}{
	store.RevokeTokenID: {"id", false, false},
	store.RevokeGrant:   {"grant_id", false, true},
	store.RevokeSubject: {"subject", true, true},
	store.RevokeClient:  {"client_id", true, true},
}

// RotateRefreshToken marks a refresh token used and stores its successor, atomically.
// The audit event, when given, is appended in the same transaction: rotation and event are durable
// together or not at all.
func (s *Store) RotateRefreshToken(ctx context.Context, hash []byte, next *store.Token, at time.Time, event *store.AuditEvent) error {
	w := &Write{
		What: "rotate refresh token",
		Stmts: []Stmt{
			{
				Query: `UPDATE tokens SET used_at = ? WHERE hash = ? AND kind = ? AND used_at = 0 AND revoked_at = 0`,
				Args:  []any{ts(at), hash, store.TokenRefresh},
				Want:  1,
				Refuse: func(ctx context.Context) error {
					var used, revoked int64
					err := s.R.QueryRowContext(ctx, s.q(`SELECT used_at, revoked_at FROM tokens WHERE hash = ? AND kind = ?`), hash, store.TokenRefresh).Scan(&used, &revoked)
					if errors.Is(err, sql.ErrNoRows) {
						return fmt.Errorf("refresh token: %w", store.ErrNotFound)
					}
					if err != nil {
						return fmt.Errorf("refresh token: %w", err)
					}
					return fmt.Errorf("refresh token already used or revoked: %w", store.ErrConflict)
				},
			},
			{Query: `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, Args: tokenArgs(next)},
		},
	}
	if event != nil {
		w.Audit = []*store.AuditEvent{event}
	}
	return s.batch.Do(ctx, w)
}

// AddRevocation records a revocation (and marks a stored token revoked for kind jti).
func (s *Store) AddRevocation(ctx context.Context, r *store.Revocation) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`INSERT INTO revocations (kind, value, at, expires_at, reason) VALUES (?, ?, ?, ?, ?)`,
			r.Kind, r.Value, ts(r.At), ts(r.ExpiresAt), r.Reason); err != nil {
			return err
		}
		if sel, ok := revokedTokens[r.Kind]; ok {
			query, args := `UPDATE tokens SET revoked_at = ? WHERE revoked_at = 0 AND `+sel.column+` = ?`, []any{ts(r.At), r.Value}
			if sel.cutoff {
				query, args = query+` AND issued_at <= ?`, append(args, ts(r.At))
			}
			if sel.refreshOnly {
				query += ` AND kind = 'refresh_token'`
			}
			if _, err := t.exec(query, args...); err != nil {
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
	return s.insertOnce(ctx, `INSERT INTO assertion_ids (issuer, jti, expires_at) VALUES (?, ?, ?)`, []any{issuer, jti, ts(exp)}, "assertion jti")
}
