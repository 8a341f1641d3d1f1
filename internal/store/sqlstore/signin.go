package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/store"
)

// Interactive sign-in. Records created on the sign-in hot path (login requests, browser sessions,
// authorization codes) are inserted through the group-commit writer like tokens; one-time uses
// (finishing a request, redeeming a code, a TOTP step, a recovery code) are single conditional
// statements, so that of concurrent callers exactly one changes the row. None of these records is
// cached, so none appends to the change feed.

// notEmpty keeps a NOT NULL byte column from receiving NULL for a nil slice.
func notEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// used tells apart, after a conditional update changed no row, a row that exists (ErrConflict)
// from none (ErrNotFound).
func (s *Store) used(ctx context.Context, query string, args []any, what, conflict string) error {
	var n int
	if err := s.R.QueryRowContext(ctx, s.q(query), args...).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", what, conflict, store.ErrConflict)
}

// --- login requests -----------------------------------------------------------------------------

const loginRequestCols = `id, client_id, request, browser_hash, created_at, expires_at, user_id, password_at, done_at`

func (s *Store) CreateLoginRequest(ctx context.Context, r *store.LoginRequest) error {
	return s.insertOnce(ctx, `INSERT INTO login_requests (`+loginRequestCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		[]any{r.ID, r.ClientID, notEmpty(r.Request), notEmpty(r.BrowserHash), ts(r.CreatedAt), ts(r.ExpiresAt), r.UserID, ts(r.PasswordAt), ts(r.DoneAt)},
		"login request "+r.ID)
}

func (s *Store) GetLoginRequest(ctx context.Context, id string) (*store.LoginRequest, error) {
	var r store.LoginRequest
	var created, expires, password, done int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT `+loginRequestCols+` FROM login_requests WHERE id = ?`), id).
		Scan(&r.ID, &r.ClientID, &r.Request, &r.BrowserHash, &created, &expires, &r.UserID, &password, &done)
	if err != nil {
		return nil, s.mapErr(err, "login request "+id)
	}
	r.CreatedAt, r.ExpiresAt, r.PasswordAt, r.DoneAt = fromTS(created), fromTS(expires), fromTS(password), fromTS(done)
	return &r, nil
}

func (s *Store) UpdateLoginRequest(ctx context.Context, r *store.LoginRequest) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE login_requests SET user_id = ?, password_at = ?, request = ? WHERE id = ? AND done_at = 0`),
		r.UserID, ts(r.PasswordAt), r.Request, r.ID)
	return s.mapErr(mustAffect(res, err, "login request "+r.ID), "update login request")
}

func (s *Store) FinishLoginRequest(ctx context.Context, id string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE login_requests SET done_at = ? WHERE id = ? AND done_at = 0`), ts(at), id)
	if err := mustAffect(res, err, "login request "+id); !errors.Is(err, store.ErrNotFound) {
		return s.mapErr(err, "finish login request")
	}
	return s.used(ctx, `SELECT COUNT(*) FROM login_requests WHERE id = ?`, []any{id}, "login request "+id, "is done already")
}

// --- browser sessions ---------------------------------------------------------------------------

const browserSessionCols = `id, secret_hash, user_id, created_at, auth_time, amr, mfa_at, last_seen_at, expires_at, ended_at, ended_by, ip, user_agent`

func (s *Store) CreateBrowserSession(ctx context.Context, b *store.BrowserSession) error {
	return s.insertOnce(ctx, `INSERT INTO browser_sessions (`+browserSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		[]any{b.ID, notEmpty(b.SecretHash), b.UserID, ts(b.CreatedAt), ts(b.AuthTime), list(b.AMR), ts(b.MFAAt), ts(b.LastSeenAt),
			ts(b.ExpiresAt), ts(b.EndedAt), b.EndedBy, b.IP, b.UserAgent},
		"browser session "+b.ID)
}

func scanBrowserSession(sc scanner) (*store.BrowserSession, error) {
	var b store.BrowserSession
	var amr string
	var created, auth, mfa, seen, expires, ended int64
	if err := sc.Scan(&b.ID, &b.SecretHash, &b.UserID, &created, &auth, &amr, &mfa, &seen, &expires, &ended, &b.EndedBy, &b.IP, &b.UserAgent); err != nil {
		return nil, err
	}
	b.CreatedAt, b.AuthTime, b.MFAAt, b.LastSeenAt, b.ExpiresAt, b.EndedAt = fromTS(created), fromTS(auth), fromTS(mfa), fromTS(seen), fromTS(expires), fromTS(ended)
	var err error
	b.AMR, err = fromList(amr)
	return &b, err
}

func (s *Store) GetBrowserSession(ctx context.Context, id string) (*store.BrowserSession, error) {
	b, err := scanBrowserSession(s.R.QueryRowContext(ctx, s.q(`SELECT `+browserSessionCols+` FROM browser_sessions WHERE id = ?`), id))
	return b, s.mapErr(err, "browser session "+id)
}

func (s *Store) ListBrowserSessions(ctx context.Context, userID string, activeAt time.Time) ([]store.BrowserSession, error) {
	q, args := `SELECT `+browserSessionCols+` FROM browser_sessions WHERE user_id = ?`, []any{userID}
	if !activeAt.IsZero() {
		q += ` AND ended_at = 0 AND expires_at > ?`
		args = append(args, ts(activeAt))
	}
	rows, err := s.R.QueryContext(ctx, s.q(q+` ORDER BY created_at DESC, id DESC`), args...)
	if err != nil {
		return nil, fmt.Errorf("browser sessions: %w", err)
	}
	defer rows.Close()
	var out []store.BrowserSession
	for rows.Next() {
		b, err := scanBrowserSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *b)
	}
	return out, rows.Err()
}

// ReauthBrowserSession stores the new authentication as given, the second-factor time included (a
// zero mfaAt clears it: the caller decides what the new authentication proved).
func (s *Store) ReauthBrowserSession(ctx context.Context, id string, secretHash []byte, authTime time.Time, amr []string, mfaAt time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE browser_sessions SET secret_hash = ?, auth_time = ?, amr = ?, mfa_at = ?
		WHERE id = ? AND ended_at = 0 AND expires_at > ?`), notEmpty(secretHash), ts(authTime), list(amr), ts(mfaAt), id, ts(authTime))
	return s.mapErr(mustAffect(res, err, "active browser session "+id), "reauthenticate browser session")
}

func (s *Store) TouchBrowserSession(ctx context.Context, id string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE browser_sessions SET last_seen_at = ? WHERE id = ?`), ts(at), id)
	return s.mapErr(mustAffect(res, err, "browser session "+id), "touch browser session")
}

func (s *Store) EndBrowserSession(ctx context.Context, id, by string, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE browser_sessions SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at = 0 AND expires_at > ?`),
		ts(at), by, id, ts(at))
	return s.mapErr(mustAffect(res, err, "active browser session "+id), "end browser session")
}

// EndBrowserSessions ends them in one statement (UPDATE … RETURNING, on SQLite and PostgreSQL alike).
func (s *Store) EndBrowserSessions(ctx context.Context, userID, except, by string, at time.Time) ([]string, error) {
	rows, err := s.W.QueryContext(ctx, s.q(`UPDATE browser_sessions SET ended_at = ?, ended_by = ?
		WHERE user_id = ? AND id <> ? AND ended_at = 0 AND expires_at > ? RETURNING id`), ts(at), by, userID, except, ts(at))
	if err != nil {
		return nil, s.mapErr(err, "end browser sessions")
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapErr(err, "end browser sessions")
	}
	return ids, nil
}

// --- clients of a session ----------------------------------------------------------------------

// AddSessionClient goes through the group-commit writer: it is written with every code issued.
func (s *Store) AddSessionClient(ctx context.Context, sessionID, clientID string, at time.Time) error {
	return s.batch.Do(ctx, &Write{What: "client " + clientID + " of session " + sessionID, Stmts: []Stmt{{
		Query: `INSERT INTO session_clients (session_id, client_id, first_at) VALUES (?, ?, ?) ON CONFLICT (session_id, client_id) DO NOTHING`,
		Args:  []any{sessionID, clientID, ts(at)}}}})
}

func (s *Store) SessionClients(ctx context.Context, sessionID string) ([]string, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT client_id FROM session_clients WHERE session_id = ? ORDER BY first_at, client_id`), sessionID)
	if err != nil {
		return nil, s.mapErr(err, "clients of session "+sessionID)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.mapErr(err, "clients of session "+sessionID)
		}
		ids = append(ids, id)
	}
	return ids, s.mapErr(rows.Err(), "clients of session "+sessionID)
}

// --- authorization codes ------------------------------------------------------------------------

const authCodeCols = `hash, id, client_id, redirect_uri, user_id, session_id, scope, nonce, code_challenge, auth_time, amr, acr, grant_id,
	created_at, expires_at, used_at`

func (s *Store) CreateAuthCode(ctx context.Context, c *store.AuthCode) error {
	return s.insertOnce(ctx, `INSERT INTO auth_codes (`+authCodeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		[]any{c.Hash, c.ID, c.ClientID, c.RedirectURI, c.UserID, c.SessionID, list(c.Scope), c.Nonce, c.CodeChallenge, ts(c.AuthTime),
			list(c.AMR), c.ACR, c.GrantID, ts(c.CreatedAt), ts(c.ExpiresAt), ts(c.UsedAt)},
		"authorization code "+c.ID)
}

func scanAuthCode(sc scanner) (*store.AuthCode, error) {
	var c store.AuthCode
	var scope, amr string
	var auth, created, expires, used int64
	if err := sc.Scan(&c.Hash, &c.ID, &c.ClientID, &c.RedirectURI, &c.UserID, &c.SessionID, &scope, &c.Nonce, &c.CodeChallenge, &auth,
		&amr, &c.ACR, &c.GrantID, &created, &expires, &used); err != nil {
		return nil, err
	}
	c.AuthTime, c.CreatedAt, c.ExpiresAt, c.UsedAt = fromTS(auth), fromTS(created), fromTS(expires), fromTS(used)
	var errs [2]error
	c.Scope, errs[0] = fromList(scope)
	c.AMR, errs[1] = fromList(amr)
	return &c, errors.Join(errs[:]...)
}

// UseAuthCode marks the code used in one conditional statement: of concurrent redeemers exactly one
// changes the row and gets it back; the others read it, used, and get ErrConflict.
func (s *Store) UseAuthCode(ctx context.Context, hash []byte, at time.Time) (*store.AuthCode, error) {
	c, err := scanAuthCode(s.W.QueryRowContext(ctx, s.q(`UPDATE auth_codes SET used_at = ? WHERE hash = ? AND used_at = 0 RETURNING `+authCodeCols), ts(at), hash))
	if !errors.Is(err, sql.ErrNoRows) {
		return c, s.mapErr(err, "use authorization code")
	}
	c, err = scanAuthCode(s.R.QueryRowContext(ctx, s.q(`SELECT `+authCodeCols+` FROM auth_codes WHERE hash = ?`), hash))
	if err != nil {
		return nil, s.mapErr(err, "authorization code")
	}
	return c, fmt.Errorf("authorization code %s was used at %s: %w", c.ID, c.UsedAt.Format(time.RFC3339Nano), store.ErrConflict)
}

// --- consents -----------------------------------------------------------------------------------

func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*store.Consent, error) {
	c := store.Consent{UserID: userID, ClientID: clientID}
	var scope string
	var granted int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT scope, granted_at FROM consents WHERE user_id = ? AND client_id = ?`), userID, clientID).Scan(&scope, &granted)
	if err != nil {
		return nil, s.mapErr(err, "consent of "+userID+" to "+clientID)
	}
	c.GrantedAt = fromTS(granted)
	c.Scope, err = fromList(scope)
	return &c, err
}

func (s *Store) PutConsent(ctx context.Context, c *store.Consent) error {
	_, err := s.W.ExecContext(ctx, s.q(`INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at`),
		c.UserID, c.ClientID, list(c.Scope), ts(c.GrantedAt))
	return s.mapErr(err, "put consent")
}

func (s *Store) DeleteConsents(ctx context.Context, userID string) error {
	_, err := s.W.ExecContext(ctx, s.q(`DELETE FROM consents WHERE user_id = ?`), userID)
	return s.mapErr(err, "delete consents")
}

// --- second factors -----------------------------------------------------------------------------

func (s *Store) PutTOTP(ctx context.Context, f *store.TOTPFactor) error {
	_, err := s.W.ExecContext(ctx, s.q(`INSERT INTO totp_factors (user_id, secret, created_at, confirmed_at, last_step) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, confirmed_at = excluded.confirmed_at,
			last_step = excluded.last_step`),
		f.UserID, notEmpty(f.Secret), ts(f.CreatedAt), ts(f.ConfirmedAt), f.LastStep)
	return s.mapErr(err, "put TOTP factor")
}

func (s *Store) GetTOTP(ctx context.Context, userID string) (*store.TOTPFactor, error) {
	f := store.TOTPFactor{UserID: userID}
	var created, confirmed int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT secret, created_at, confirmed_at, last_step FROM totp_factors WHERE user_id = ?`), userID).
		Scan(&f.Secret, &created, &confirmed, &f.LastStep)
	if err != nil {
		return nil, s.mapErr(err, "TOTP factor of "+userID)
	}
	f.CreatedAt, f.ConfirmedAt = fromTS(created), fromTS(confirmed)
	return &f, nil
}

// ConfirmTOTP confirms an unconfirmed factor only: confirming again could move LastStep back and
// let a used code be replayed. ErrNotFound when the user has no unconfirmed factor.
func (s *Store) ConfirmTOTP(ctx context.Context, userID string, step int64, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE totp_factors SET confirmed_at = ?, last_step = ? WHERE user_id = ? AND confirmed_at = 0`), ts(at), step, userID)
	return s.mapErr(mustAffect(res, err, "unconfirmed TOTP factor of "+userID), "confirm TOTP factor")
}

func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE totp_factors SET last_step = ? WHERE user_id = ? AND confirmed_at <> 0 AND last_step < ?`), step, userID, step)
	if err := mustAffect(res, err, "TOTP factor of "+userID); !errors.Is(err, store.ErrNotFound) {
		return s.mapErr(err, "use TOTP step")
	}
	return s.used(ctx, `SELECT COUNT(*) FROM totp_factors WHERE user_id = ? AND confirmed_at <> 0`, []any{userID},
		"confirmed TOTP factor of "+userID, fmt.Sprintf("accepted step %d or a later one already", step))
}

func (s *Store) DeleteSecondFactors(ctx context.Context, userID string) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`DELETE FROM totp_factors WHERE user_id = ?`, userID); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM recovery_codes WHERE user_id = ?`, userID)
		return err
	}), "delete second factors")
}

func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, at time.Time) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := t.exec(`INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, 0)`, userID, notEmpty(h), ts(at)); err != nil {
				return err
			}
		}
		return nil
	}), "set recovery codes")
}

func (s *Store) UseRecoveryCode(ctx context.Context, userID string, hash []byte, at time.Time) error {
	res, err := s.W.ExecContext(ctx, s.q(`UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at = 0`), ts(at), userID, hash)
	return s.mapErr(mustAffect(res, err, "unused recovery code"), "use recovery code")
}

func (s *Store) CountRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.R.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at = 0`), userID).Scan(&n)
	return n, s.mapErr(err, "count recovery codes")
}

// --- failed sign-ins ----------------------------------------------------------------------------

// AddSignInFailure counts in one statement: an upsert that restarts a window that started at or
// before at-window, so that concurrent failures are all counted.
func (s *Store) AddSignInFailure(ctx context.Context, key string, at time.Time, window time.Duration) (int, time.Time, error) {
	expired := ts(at.Add(-window))
	var count int
	var start int64
	err := s.W.QueryRowContext(ctx, s.q(`INSERT INTO signin_failures (key, count, window_start) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN signin_failures.window_start <= ? THEN 1 ELSE signin_failures.count + 1 END,
			window_start = CASE WHEN signin_failures.window_start <= ? THEN excluded.window_start ELSE signin_failures.window_start END
		RETURNING count, window_start`), key, ts(at), expired, expired).Scan(&count, &start)
	if err != nil {
		return 0, time.Time{}, s.mapErr(err, "count failed sign-in")
	}
	return count, fromTS(start), nil
}

func (s *Store) SignInFailures(ctx context.Context, key string, at time.Time, window time.Duration) (int, time.Time, error) {
	var count int
	var start int64
	err := s.R.QueryRowContext(ctx, s.q(`SELECT count, window_start FROM signin_failures WHERE key = ?`), key).Scan(&count, &start)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && start <= ts(at.Add(-window))) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, s.mapErr(err, "failed sign-ins")
	}
	return count, fromTS(start), nil
}

func (s *Store) ClearSignInFailures(ctx context.Context, key string) error {
	_, err := s.W.ExecContext(ctx, s.q(`DELETE FROM signin_failures WHERE key = ?`), key)
	return s.mapErr(err, "clear failed sign-ins")
}
