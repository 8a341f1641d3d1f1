package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/signet-id/signet/internal/store"
)

func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// --- registered public keys ---------------------------------------------------------------------

const publicKeyCols = `id, owner_kind, owner_id, algorithm, public_key_pem, expires_at, revoked_at, created_at`

func scanPublicKey(sc scanner) (*store.PublicKey, error) {
	var k store.PublicKey
	var kind string
	var exp, rev, created int64
	if err := sc.Scan(&k.ID, &kind, &k.OwnerID, &k.Algorithm, &k.PublicKeyPEM, &exp, &rev, &created); err != nil {
		return nil, err
	}
	k.OwnerKind, k.ExpiresAt, k.RevokedAt, k.CreatedAt = store.PrincipalKind(kind), fromTS(exp), fromTS(rev), fromTS(created)
	return &k, nil
}

func (s *Store) CreatePublicKey(ctx context.Context, k *store.PublicKey) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if err := t.principalExists(k.OwnerKind, k.OwnerID); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO public_keys (`+publicKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, string(k.OwnerKind), k.OwnerID, k.Algorithm, k.PublicKeyPEM, ts(k.ExpiresAt), ts(k.RevokedAt), ts(k.CreatedAt)); err != nil {
			return err
		}
		return t.change(store.ChangePublicKey, k.ID)
	}), "create key "+k.ID)
}

func (s *Store) GetPublicKey(ctx context.Context, id string) (*store.PublicKey, error) {
	k, err := scanPublicKey(s.R.QueryRowContext(ctx, s.q(`SELECT `+publicKeyCols+` FROM public_keys WHERE id = ?`), id))
	return k, s.mapErr(err, "key "+id)
}

func (s *Store) ListPublicKeys(ctx context.Context, kind store.PrincipalKind, ownerID string) ([]store.PublicKey, error) {
	rows, err := s.R.QueryContext(ctx, s.q(`SELECT `+publicKeyCols+` FROM public_keys WHERE owner_kind = ? AND owner_id = ? ORDER BY created_at, id`), string(kind), ownerID)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer rows.Close()
	var out []store.PublicKey
	for rows.Next() {
		k, err := scanPublicKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

func (s *Store) RevokePublicKey(ctx context.Context, id string, at time.Time) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`UPDATE public_keys SET revoked_at = ? WHERE id = ?`, ts(at), id)
		if err := mustAffect(res, err, "key "+id); err != nil {
			return err
		}
		return t.change(store.ChangePublicKey, id)
	}), "revoke key "+id)
}

// --- signing keys -------------------------------------------------------------------------------

const signingCols = `id, algorithm, state, private_key, public_jwk, created_at, activated_at, retired_at`

func (t *txn) insertSigningKey(k *store.SigningKey) error {
	if _, err := t.exec(`INSERT INTO signing_keys (`+signingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.Algorithm, k.State, k.PrivateKey, k.PublicJWK, ts(k.CreatedAt), ts(k.ActivatedAt), ts(k.RetiredAt)); err != nil {
		return err
	}
	return t.change(store.ChangeSigningKey, k.ID)
}

func (s *Store) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error { return t.insertSigningKey(k) }), "create signing key")
}

func (s *Store) ListSigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.R.QueryContext(ctx, `SELECT `+signingCols+` FROM signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created, activated, retired int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.State, &k.PrivateKey, &k.PublicJWK, &created, &activated, &retired); err != nil {
			return nil, err
		}
		k.CreatedAt, k.ActivatedAt, k.RetiredAt = fromTS(created), fromTS(activated), fromTS(retired)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *Store) RotateSigningKey(ctx context.Context, alg string, newNext *store.SigningKey, now time.Time) error {
	return s.mapErr(s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(`UPDATE signing_keys SET state = ?, retired_at = ? WHERE algorithm = ? AND state = ?`,
			store.SigningRetired, ts(now), alg, store.SigningActive); err != nil {
			return err
		}
		res, err := t.exec(`UPDATE signing_keys SET state = ?, activated_at = ? WHERE algorithm = ? AND state = ?`,
			store.SigningActive, ts(now), alg, store.SigningNext)
		if err != nil {
			return err
		}
		promoted, err := res.RowsAffected()
		if err != nil {
			return err
		}
		k := *newNext
		k.State, k.ActivatedAt = store.SigningNext, time.Time{}
		if promoted == 0 {
			k.State, k.ActivatedAt = store.SigningActive, now
		}
		*newNext = k
		return t.insertSigningKey(newNext)
	}), "rotate signing key")
}

func (s *Store) DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(t *txn) error {
		res, err := t.exec(`DELETE FROM signing_keys WHERE state = ? AND retired_at < ?`, store.SigningRetired, ts(retiredBefore))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return t.change(store.ChangeSigningKey, "*")
	})
	return int(n), s.mapErr(err, "delete signing keys")
}
