// Package keys owns the issuer's signing keys (generation, sealing with the master key, rotation,
// the JWKS) and the key files handed out to service accounts and applications. Verifying JWTs is
// jwtverify's job; this package supplies it with keys.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/jwtverify"
)

// Signing algorithms.
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// ValidAlgorithm reports whether Signet signs with alg.
func ValidAlgorithm(alg string) bool { return alg == ES256 || alg == EdDSA || alg == RS256 }

// Store is the part of the store the manager needs.
type Store interface {
	CreateSigningKey(ctx context.Context, k *store.SigningKey) error
	ListSigningKeys(ctx context.Context) ([]store.SigningKey, error)
	RotateSigningKey(ctx context.Context, alg string, newNext *store.SigningKey, now time.Time) error
	DeleteSigningKeys(ctx context.Context, retiredBefore time.Time) (int, error)
}

// Manager holds the decrypted signing keys in memory. Sign, Key and JWKS read an immutable snapshot
// without locks; Load, Ensure and Rotate replace it.
type Manager struct {
	st        Store
	sk        *secrets.Keys
	retention time.Duration
	now       func() time.Time

	mu  sync.Mutex // serialises changes
	cur atomic.Pointer[snapshot]
}

type loaded struct {
	info   store.SigningKey
	signer crypto.Signer
	verify *jwtverify.Key
	header map[string]string // typ → encoded protected header; read-only after unseal
}

type snapshot struct {
	byID   map[string]*loaded
	active map[string]*loaded // alg → newest active key
	jwks   []byte
	algs   []string
	list   []Info
}

// Info describes a signing key for listings.
type Info struct {
	ID          string    `json:"id"`
	Algorithm   string    `json:"alg"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"created_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
}

// NewManager returns a manager; retired keys stay published for retention (at least the longest
// token lifetime, so every token a key signed can still be verified).
func NewManager(st Store, sk *secrets.Keys, retention time.Duration) *Manager {
	m := &Manager{st: st, sk: sk, retention: retention, now: time.Now}
	m.cur.Store(&snapshot{byID: map[string]*loaded{}, active: map[string]*loaded{}, jwks: []byte(`{"keys":[]}`)})
	return m
}

// Load (re)reads every key from the store and decrypts the private halves.
func (m *Manager) Load(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load(ctx)
}

func (m *Manager) load(ctx context.Context) error {
	list, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("list signing keys: %w", err)
	}
	now := m.now()
	s := &snapshot{byID: map[string]*loaded{}, active: map[string]*loaded{}}
	var set jose.JSONWebKeySet
	for _, k := range list {
		if k.State == store.SigningRetired && now.Sub(k.RetiredAt) > m.retention {
			continue // nothing it signed is still valid
		}
		l, err := m.unseal(k)
		if err != nil {
			return err
		}
		s.byID[k.ID] = l
		if k.State == store.SigningActive {
			if prev, ok := s.active[k.Algorithm]; !ok || k.ActivatedAt.After(prev.info.ActivatedAt) {
				s.active[k.Algorithm] = l
			}
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: l.signer.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
		s.list = append(s.list, Info{ID: k.ID, Algorithm: k.Algorithm, State: k.State, CreatedAt: k.CreatedAt, ActivatedAt: k.ActivatedAt, RetiredAt: k.RetiredAt})
	}
	if s.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	for alg := range s.active {
		s.algs = append(s.algs, alg)
	}
	slices.SortFunc(s.algs, func(a, b string) int { return algRank(a) - algRank(b) })
	m.cur.Store(s)
	return nil
}

func algRank(alg string) int {
	switch alg {
	case ES256:
		return 0
	case EdDSA:
		return 1
	}
	return 2
}

func (m *Manager) unseal(k store.SigningKey) (*loaded, error) {
	der, err := m.sk.Open(k.PrivateKey, []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s cannot be decrypted: the master key differs from the one that sealed the keys (set SIGNET_MASTER_KEY to the original)", k.ID)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: unsupported type", k.ID)
	}
	l := &loaded{
		info: k, signer: signer, header: map[string]string{},
		verify: &jwtverify.Key{ID: k.ID, Public: signer.Public(), Algorithm: k.Algorithm, Owner: "issuer signing key"},
	}
	for _, typ := range commonTypes {
		l.header[typ] = encodeHeader(k.Algorithm, k.ID, typ)
	}
	return l, nil
}

// generate makes a sealed signing key record.
func (m *Manager) generate(alg, state string, now time.Time) (*store.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("unsupported signing algorithm %q: use ES256, EdDSA or RS256", alg)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	id := secrets.NewID()
	jwk, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, err
	}
	k := &store.SigningKey{ID: id, Algorithm: alg, State: state, PrivateKey: m.sk.Seal(der, []byte(id)), PublicJWK: jwk, CreatedAt: now}
	if state == store.SigningActive {
		k.ActivatedAt = now
	}
	return k, nil
}

// Ensure creates an active and a next key for alg when alg has no active key.
func (m *Manager) Ensure(ctx context.Context, alg string) (bool, error) {
	if !ValidAlgorithm(alg) {
		return false, fmt.Errorf("unsupported signing algorithm %q: use ES256, EdDSA or RS256", alg)
	}
	if _, ok := m.cur.Load().active[alg]; ok {
		return false, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(ctx); err != nil { // another process may have created one
		return false, err
	}
	if _, ok := m.cur.Load().active[alg]; ok {
		return false, nil
	}
	now := m.now()
	for _, state := range []string{store.SigningActive, store.SigningNext} {
		k, err := m.generate(alg, state, now)
		if err != nil {
			return false, err
		}
		if err := m.st.CreateSigningKey(ctx, k); errors.Is(err, store.ErrConflict) {
			// Another replica starting at the same moment created this algorithm's keys.
			return false, m.load(ctx)
		} else if err != nil {
			return false, fmt.Errorf("store signing key: %w", err)
		}
	}
	return true, m.load(ctx)
}

// Rotate promotes alg's next key to active, retires the active one and pre-publishes a new next
// key; keys retired longer than the retention are deleted.
func (m *Manager) Rotate(ctx context.Context, alg string, now time.Time) error {
	if !ValidAlgorithm(alg) {
		return fmt.Errorf("unsupported signing algorithm %q: use ES256, EdDSA or RS256", alg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := m.generate(alg, store.SigningNext, now)
	if err != nil {
		return err
	}
	if err := m.st.RotateSigningKey(ctx, alg, next, now); err != nil {
		return fmt.Errorf("rotate %s: %w", alg, err)
	}
	if _, err := m.st.DeleteSigningKeys(ctx, now.Add(-m.retention)); err != nil {
		return fmt.Errorf("delete old keys: %w", err)
	}
	return m.load(ctx)
}

// Sign returns a compact JWS of claims signed with alg's active key.
func (m *Manager) Sign(alg, typ string, claims any) (string, error) {
	l, ok := m.cur.Load().active[alg]
	if !ok {
		return "", fmt.Errorf("no active %s signing key (run `signet keys rotate --alg %s`)", alg, alg)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	header := l.protected(typ)
	buf := make([]byte, 0, len(header)+1+base64.RawURLEncoding.EncodedLen(len(payload))+1+344)
	buf = append(buf, header...)
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, payload)
	sig, err := l.sign(buf)
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = base64.RawURLEncoding.AppendEncode(buf, sig)
	return string(buf), nil
}

// commonTypes get their protected headers encoded once, when the key is loaded.
var commonTypes = []string{"", "JWT", "at+jwt", "token-introspection+jwt"}

// protected returns the encoded header for typ.
func (l *loaded) protected(typ string) string {
	if h, ok := l.header[typ]; ok {
		return h
	}
	return encodeHeader(l.info.Algorithm, l.info.ID, typ)
}

func encodeHeader(alg, kid, typ string) string {
	h := struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ,omitempty"`
	}{alg, kid, typ}
	b, _ := json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign produces the JWS signature bytes (ES256: raw r||s, RFC 7518 §3.4).
func (l *loaded) sign(input []byte) ([]byte, error) {
	switch k := l.signer.(type) {
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	case *rsa.PrivateKey:
		digest := sha256.Sum256(input)
		return rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:])
	case ed25519.PrivateKey:
		return ed25519.Sign(k, input), nil
	}
	return nil, errors.New("unsupported signing key type")
}

// Key returns a published key by ID; it fits jwtverify.KeyFunc.
func (m *Manager) Key(_ context.Context, kid string) (*jwtverify.Key, error) {
	l, ok := m.cur.Load().byID[kid]
	if !ok {
		return nil, jwtverify.ErrUnknownKey
	}
	return l.verify, nil
}

// JWKS returns the published key set as JSON.
func (m *Manager) JWKS() []byte { return m.cur.Load().jwks }

// Algorithms lists the algorithms with an active key, ES256 first.
func (m *Manager) Algorithms() []string { return m.cur.Load().algs }

// List describes every published key, oldest first.
func (m *Manager) List() []Info { return m.cur.Load().list }
