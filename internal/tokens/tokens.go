package tokens

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/signet-id/signet/internal/keys"
	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/jwtverify"
)

// AccessTokenType is the JOSE "typ" of JWT access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// Config configures a Service.
type Config struct {
	Issuer    string
	Store     store.Store
	Keys      *keys.Manager
	Secrets   *secrets.Keys
	Leeway    time.Duration // clock skew tolerated on our own tokens' nbf (replicas' clocks); never on exp
	CacheSize int           // resolved tokens kept in memory
	// Principals says whether a token's principals may still hold active tokens (locked users,
	// disabled or deleted clients and service accounts may not). Nil: not checked (tests of this
	// package only; the server always sets it).
	Principals Principals
	Now        func() time.Time
	Log        *slog.Logger
}

// Principals reports the standing of the principals a token names.
type Principals interface {
	// Standing returns "" when the principal may hold active tokens, or why not ("user dana is
	// locked", "client api was deleted"). The error is for server faults only.
	Standing(ctx context.Context, kind store.PrincipalKind, id string) (string, error)
	// Version changes whenever a Standing answer may have changed.
	Version() uint64
}

// Service issues and resolves access tokens.
type Service struct {
	cfg     Config
	cache   *cache
	unknown unknownTokens
	revoked revocations
	dirty   atomic.Bool // a revocation change arrived; reload before trusting the set
	hits    atomic.Uint64
	misses  atomic.Uint64
}

// New returns a Service. Call LoadRevocations before serving.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg, cache: newCache(cfg.CacheSize), unknown: unknownTokens{max: max(cfg.CacheSize/10, 1000)}}
}

// NewID returns a token ID (jti) that carries at, the time the token's issuance was decided, to the
// millisecond (secrets.NewSortableID): revocation cut-offs compare it, since iat has whole seconds
// only. at must fall within the token's IssuedAt second.
func NewID(at time.Time) string { return secrets.NewSortableID(at) }

// Issue mints a token with a's content in the given format. It fills ID (from IssuedAt) and Issuer
// when empty.
func (s *Service) Issue(ctx context.Context, a *Access, format, alg string) (string, error) {
	if a.ID == "" {
		a.ID = NewID(a.IssuedAt)
	}
	a.Issuer = s.cfg.Issuer
	a.Format = format
	if a.NotBefore.IsZero() {
		a.NotBefore = a.IssuedAt
	}
	switch format {
	case store.FormatJWT:
		return s.cfg.Keys.Sign(alg, AccessTokenType, a.claims())
	case store.FormatOpaque:
		raw := secrets.NewOpaqueToken(secrets.AccessTokenPrefix)
		t, err := toStored(a, s.cfg.Secrets.HashToken(raw), a.ID, store.TokenAccess, a.ExpiresAt)
		if err != nil {
			return "", err
		}
		if err := s.cfg.Store.CreateToken(ctx, t); err != nil {
			return "", fmt.Errorf("store opaque token: %w", err)
		}
		return raw, nil
	default:
		return "", fmt.Errorf("unknown access token format %q", format)
	}
}

// Inactive says why a token is not active. It is for operators (logs, explain), never for the
// caller, who sees only {"active":false} (RFC 7662 §2.2).
type Inactive struct {
	Code   string // malformed, unknown, expired, not_yet_valid, revoked, invalid_signature, foreign, wrong_type
	Detail string
	Access *Access // what the token says, when it could be read
}

func (i *Inactive) String() string { return i.Code + ": " + i.Detail }

// Resolve returns what a presented access token says when it is active, or why it is not. The error
// is set only for server faults (the store failing).
func (s *Service) Resolve(ctx context.Context, raw string) (*Access, *Inactive, error) {
	now := s.cfg.Now()
	k := cacheKey(raw)
	a, ok := s.cache.get(k)
	if ok {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
		var inactive *Inactive
		var err error
		a, inactive, err = s.load(ctx, raw)
		if err != nil || inactive != nil {
			return nil, inactive, err
		}
		s.cache.put(k, a, now)
	}
	return s.active(ctx, a, now)
}

// active is every check a resolved token goes through on every use, cached or not: its lifetime
// (no leeway on our own exp), revocation of it or any ancestor, and the standing of the
// principals it and its ancestors name.
func (s *Service) active(ctx context.Context, a *Access, now time.Time) (*Access, *Inactive, error) {
	if !now.Before(a.ExpiresAt) {
		return nil, &Inactive{Code: "expired", Detail: "token expired at " + a.ExpiresAt.UTC().Format(time.RFC3339), Access: a}, nil
	}
	if now.Add(s.cfg.Leeway).Before(a.NotBefore) {
		return nil, &Inactive{Code: "not_yet_valid", Detail: "token is not valid before " + a.NotBefore.UTC().Format(time.RFC3339), Access: a}, nil
	}
	if inactive := s.revokedNow(ctx, a); inactive != nil {
		return nil, inactive, nil
	}
	if inactive, err := s.standing(ctx, a); inactive != nil || err != nil {
		return nil, inactive, err
	}
	return a, nil, nil
}

// standing checks the principals of a token and of each of its ancestors: the subject and the
// client it was issued to.
func (s *Service) standing(ctx context.Context, a *Access) (*Inactive, error) {
	if s.cfg.Principals == nil {
		return nil, nil
	}
	// A cached token whose principals were all in good standing at this directory version needs no
	// new look-ups (the hot introspection path).
	v := s.cfg.Principals.Version() + 1
	if a.standingAt.Load() == v {
		return nil, nil
	}
	check := func(l Link) (*Inactive, error) {
		if l.Kind != "" {
			why, err := s.cfg.Principals.Standing(ctx, l.Kind, l.Subject)
			if why != "" || err != nil {
				return principalInactive(a, l, why), err
			}
		}
		// A service account acting alone is its own client.
		if l.Client != "" && !(l.Client == l.Subject && l.Kind != store.KindClient) {
			why, err := s.cfg.Principals.Standing(ctx, store.KindClient, l.Client)
			if why != "" || err != nil {
				return principalInactive(a, l, why), err
			}
		}
		return nil, nil
	}
	if inactive, err := check(a.link()); inactive != nil || err != nil {
		return inactive, err
	}
	for _, l := range a.Lineage {
		if inactive, err := check(l); inactive != nil || err != nil {
			return inactive, err
		}
	}
	a.standingAt.Store(v)
	return nil, nil
}

func principalInactive(a *Access, l Link, why string) *Inactive {
	if why == "" {
		return nil
	}
	if l.ID != a.ID {
		why += " (token " + l.ID + ", which this token was derived from)"
	}
	return &Inactive{Code: "principal", Detail: why, Access: a}
}

// load reads a token from its source of truth: the store for opaque tokens, the signature for JWTs.
func (s *Service) load(ctx context.Context, raw string) (*Access, *Inactive, error) {
	switch {
	case secrets.LooksOpaque(raw):
		if strings.HasPrefix(raw, secrets.RefreshTokenPrefix) {
			return nil, &Inactive{Code: "wrong_type", Detail: "a refresh token is not an access token"}, nil
		}
		k, now := cacheKey(raw), s.cfg.Now()
		if s.unknown.has(k, now) {
			return nil, &Inactive{Code: "unknown", Detail: "no opaque token with this value was issued here (or it was pruned after expiry)"}, nil
		}
		t, err := s.cfg.Store.GetToken(ctx, s.cfg.Secrets.HashToken(raw))
		if errors.Is(err, store.ErrNotFound) {
			s.unknown.add(k, now)
			return nil, &Inactive{Code: "unknown", Detail: "no opaque token with this value was issued here (or it was pruned after expiry)"}, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if t.Kind != store.TokenAccess {
			return nil, &Inactive{Code: "wrong_type", Detail: "token " + t.ID + " is a " + t.Kind}, nil
		}
		a, err := fromStored(t, s.cfg.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("token %s: stored claims: %w", t.ID, err)
		}
		return a, nil, nil
	case strings.Count(raw, ".") == 2:
		return s.verifyJWT(ctx, raw)
	default:
		return nil, &Inactive{Code: "malformed", Detail: "neither a JWT nor a Signet opaque token (sgn_at_…)"}, nil
	}
}

func (s *Service) verifyJWT(ctx context.Context, raw string) (*Access, *Inactive, error) {
	var c claims
	// Time claims are checked by Resolve on every call, cached or not, hence the wide leeway here.
	tok, inactive, err := s.verifyOwn(ctx, raw, AccessTokenType, "access token", 100*365*24*time.Hour, &c)
	if tok == nil {
		return nil, inactive, err
	}
	return &Access{
		ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, SubjectKind: store.PrincipalKind(c.SubjectKind),
		ClientID: c.ClientID, Audience: tok.Claims.Audience, Scope: strings.Fields(c.Scope),
		IssuedAt: tok.Claims.IssuedAt, NotBefore: tok.Claims.NotBefore, ExpiresAt: tok.Claims.ExpiresAt,
		GrantID: c.GrantID, SessionID: c.SessionID, Act: c.Act, Exchange: c.Exchange, Lineage: c.Lineage, Format: store.FormatJWT,
	}, nil, nil
}

// revokedNow checks a against the revocation set, reloading it first when the change feed said it
// is stale; it says which revocation made the token inactive, or nil.
func (s *Service) revokedNow(ctx context.Context, a *Access) *Inactive {
	if s.dirty.CompareAndSwap(true, false) {
		s.reloadRevocations(ctx)
	}
	rev, ok := s.revoked.match(a)
	if !ok {
		return nil
	}
	d := fmt.Sprintf("revoked by %s %s at %s", rev.Kind, rev.Value, rev.At.UTC().Format(time.RFC3339))
	if rev.Reason != "" {
		d += " (" + rev.Reason + ")"
	}
	return &Inactive{Code: "revoked", Detail: d, Access: a}
}

// verifyOwn checks a JWT this issuer signed (type, signature, iss, exp, iat, jti) and decodes its
// claims into dst. A nil token comes with the Inactive reason or a server fault.
func (s *Service) verifyOwn(ctx context.Context, raw, typ, what string, leeway time.Duration, dst any) (*jwtverify.Token, *Inactive, error) {
	tok, err := jwtverify.Verify(ctx, raw, s.cfg.Keys.Key, jwtverify.Options{
		Issuer: s.cfg.Issuer, Type: typ, Now: s.cfg.Now, Leeway: leeway,
		RequireExp: true, RequireIAT: true, RequireJTI: true,
	})
	if err != nil {
		inactive, err := verifyFailure(err)
		return nil, inactive, err
	}
	b, _ := json.Marshal(tok.Raw)
	if err := json.Unmarshal(b, dst); err != nil {
		return nil, &Inactive{Code: "malformed", Detail: "claims do not have " + what + " types: " + err.Error()}, nil
	}
	return tok, nil, nil
}

// verifyFailure turns a signature-check failure into the Inactive reason operators see; anything
// but a jwtverify.Error is a server fault.
func verifyFailure(err error) (*Inactive, error) {
	var ve *jwtverify.Error
	if !errors.As(err, &ve) {
		return nil, err
	}
	code, ok := map[jwtverify.Reason]string{jwtverify.ReasonMalformed: "malformed", jwtverify.ReasonIssuer: "foreign", jwtverify.ReasonType: "wrong_type",
		jwtverify.ReasonExpired: "expired", jwtverify.ReasonNotYetValid: "not_yet_valid"}[ve.Reason]
	if !ok {
		code = "invalid_signature"
	}
	return &Inactive{Code: code, Detail: ve.Error()}, nil
}

// Revoke records a revocation in the store and applies it here at once; other replicas apply it
// when the change feed reaches them. A refresh token named by ID takes its whole grant with it, as
// revoking it by value does: the tokens refreshed from it carry its grant, not its ID.
func (s *Service) Revoke(ctx context.Context, rev store.Revocation) error {
	if rev.Kind == store.RevokeTokenID {
		t, err := s.cfg.Store.GetTokenByID(ctx, rev.Value)
		switch {
		case err == nil && t.Kind == store.TokenRefresh:
			rev.Kind, rev.Value = Family(t)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	if err := s.cfg.Store.AddRevocation(ctx, &rev); err != nil {
		return err
	}
	s.revoked.add(rev)
	return nil
}

// LoadRevocations (re)reads the revocation set from the store.
func (s *Service) LoadRevocations(ctx context.Context) error {
	return s.revoked.reload(ctx, s.cfg.Store, s.cfg.Now())
}

func (s *Service) reloadRevocations(ctx context.Context) {
	if err := s.LoadRevocations(ctx); err != nil {
		s.dirty.Store(true) // try again on the next call
		s.cfg.Log.Error("reloading revocations failed", "err", err)
	}
}

// Invalidate reacts to the change feed: a new revocation elsewhere makes the set stale.
func (s *Service) Invalidate(c store.Change) {
	if c.Kind == store.ChangeRevocation || c.Kind == store.ChangeResync {
		s.dirty.Store(true)
	}
}

// Sweep drops expired tokens from the cache (the server calls it periodically) and says how many.
func (s *Service) Sweep(now time.Time) int { return s.cache.sweep(now) }

// CacheStats returns hit and miss counts and the number of cached tokens.
func (s *Service) CacheStats() (hits, misses uint64, size int) {
	return s.hits.Load(), s.misses.Load(), s.cache.len()
}

// IDTokenType is the JOSE "typ" of Signet's ID tokens; it keeps them apart from access tokens.
const IDTokenType = "JWT"

// ResolveIDToken verifies an ID token issued here (signature, issuer, type, expiry, revocation of it
// and its ancestors, its principals' standing) and returns what it says when client is in its
// audience: an ID token proves who signed in at that client, so only that client may present it
// (RFC 8693 subject_token_type id_token). Its scope is the scope of the token it was minted from
// (empty when it carries none): an ID token never grants more than its origin did.
func (s *Service) ResolveIDToken(ctx context.Context, raw, client string) (*Access, *Inactive, error) {
	if strings.Count(raw, ".") != 2 {
		return nil, &Inactive{Code: "malformed", Detail: "an ID token is a signed JWT"}, nil
	}
	var c idClaims
	// exp is checked below without leeway, like every token this issuer signs.
	tok, inactive, err := s.verifyOwn(ctx, raw, IDTokenType, "ID token", 100*365*24*time.Hour, &c)
	if tok == nil {
		return nil, inactive, err
	}
	a := &Access{
		ID: c.ID, Issuer: c.Issuer, Subject: c.Subject, SubjectKind: store.KindUser, ClientID: client, Audience: tok.Claims.Audience,
		Scope: strings.Fields(c.Scope), IssuedAt: tok.Claims.IssuedAt, NotBefore: tok.Claims.IssuedAt, ExpiresAt: tok.Claims.ExpiresAt,
		SessionID: c.SessionID, GrantID: c.GrantID, Act: c.Act, Exchange: c.Exchange, Lineage: c.Lineage, Format: store.FormatJWT,
	}
	if !slices.Contains(tok.Claims.Audience, client) {
		return nil, &Inactive{Code: "audience", Detail: "ID token issued to " + strings.Join(tok.Claims.Audience, ", "), Access: a}, nil
	}
	return s.active(ctx, a, s.cfg.Now())
}

// idClaims is an ID token's content (OIDC Core §2) with the actor chain, the scope of the token
// it was minted from and its lineage.
type idClaims struct {
	Issuer    string    `json:"iss"`
	Subject   string    `json:"sub"`
	Audience  []string  `json:"aud"`
	ExpiresAt int64     `json:"exp"`
	IssuedAt  int64     `json:"iat"`
	AuthTime  int64     `json:"auth_time,omitempty"`
	ID        string    `json:"jti"`
	SessionID string    `json:"sid,omitempty"`
	GrantID   string    `json:"signet_grant,omitempty"`
	Scope     string    `json:"scope,omitempty"`
	Act       *Actor    `json:"act,omitempty"`
	Exchange  *Exchange `json:"signet_exchange,omitempty"`
	Lineage   []Link    `json:"signet_lineage,omitempty"`
	*SignIn
}

// SignIn is what an ID token from a sign-in says besides its access token's content (OIDC Core
// §2, §3.1.3.6): how and when the user authenticated, the request's nonce, and at_hash, which binds
// it to the access token of the same response. (c_hash binds an ID token to a code sent with it
// from the authorization endpoint: hybrid flows only, which Signet does not serve.)
type SignIn struct {
	Nonce           string   `json:"nonce,omitempty"`
	AMR             []string `json:"amr,omitempty"`
	ACR             string   `json:"acr,omitempty"`
	AuthorizedParty string   `json:"azp,omitempty"`
	AccessTokenHash string   `json:"at_hash,omitempty"`
	// AuthTime is when the user authenticated (auth_time).
	AuthTime time.Time `json:"-"`
}

// Profile is what userinfo says about a user, by scope (OIDC Core §5.4):
// profile gives preferred_username and name, email the address when the user has one.
type Profile struct {
	PreferredUsername string `json:"preferred_username,omitempty"`
	Name              string `json:"name,omitempty"`
	Email             string `json:"email,omitempty"`
}

// ProfileOf is u's Profile as the scope allows.
func ProfileOf(u *store.User, scope []string) Profile {
	var p Profile
	if slices.Contains(scope, "profile") {
		p.PreferredUsername, p.Name = u.Username, u.DisplayName
		if p.Name == "" {
			p.Name = u.Username
		}
	}
	if slices.Contains(scope, "email") {
		p.Email = u.Email
	}
	return p
}

// HalfHash is OIDC Core §3.1.3.6's at_hash: the left half of the hash of value, with
// the hash of the ID token's signing algorithm (SHA-256 for ES256 and RS256, SHA-512 for EdDSA, as
// the clients that check it compute it), base64url without padding.
func HalfHash(alg, value string) string {
	var sum []byte
	if alg == "EdDSA" {
		h := sha512.Sum512([]byte(value))
		sum = h[:]
	} else {
		h := sha256.Sum256([]byte(value))
		sum = h[:]
	}
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// IssueIDToken signs an ID token about a's subject for a's client: at sign-in (the authorization
// code and refresh grants, with in describing the sign-in) or by token exchange with
// requested_token_type id_token (in nil). ID tokens are not access tokens: introspection refuses
// them. The token keeps a's scope and lineage, so exchanging it later can never widen what a
// allowed, and revoking what a came from ends it too.
func (s *Service) IssueIDToken(a *Access, alg string, in *SignIn) (string, error) {
	if a.ID == "" {
		a.ID = NewID(a.IssuedAt)
	}
	c := idClaims{
		Issuer: s.cfg.Issuer, Subject: a.Subject, Audience: []string{a.ClientID}, ExpiresAt: a.ExpiresAt.Unix(),
		IssuedAt: a.IssuedAt.Unix(), ID: a.ID, SessionID: a.SessionID, GrantID: a.GrantID, Scope: strings.Join(a.Scope, " "),
		Act: a.Act, Exchange: a.Exchange, Lineage: a.Lineage, SignIn: in,
	}
	if in != nil {
		// A sign-in's ID token says who signed in and how (OIDC Core §2), nothing more: the
		// scope's claims are userinfo's (§5.4), and an exchange of it grants no scope.
		c.Scope = ""
		if !in.AuthTime.IsZero() {
			c.AuthTime = in.AuthTime.Unix()
		}
	}
	return s.cfg.Keys.Sign(alg, IDTokenType, c)
}

// IssueRefresh stores a refresh token (sgn_rt_…) that carries a's subject, client, scope, audience,
// grant, session and exchange claims and is valid until exp. Only its keyed hash is kept.
func (s *Service) IssueRefresh(ctx context.Context, a *Access, exp time.Time) (string, error) {
	raw, t, err := s.refreshRecord(a, exp)
	if err != nil {
		return "", err
	}
	if err := s.cfg.Store.CreateToken(ctx, t); err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return raw, nil
}

// RotateRefresh marks old used and stores its successor (same grant, same absolute expiry) in one
// transaction. store.ErrConflict means old was used or revoked meanwhile: a reuse.
// The audit event, when given, commits with the rotation.
func (s *Service) RotateRefresh(ctx context.Context, old *store.Token, a *Access, event *store.AuditEvent) (string, error) {
	raw, next, err := s.refreshRecord(a, old.ExpiresAt)
	if err != nil {
		return "", err
	}
	if err := s.cfg.Store.RotateRefreshToken(ctx, old.Hash, next, a.IssuedAt, event); err != nil {
		return "", err
	}
	return raw, nil
}

// refreshRecord is the stored form of a refresh token issued with a: its ID carries a's issue time,
// as a's own does.
func (s *Service) refreshRecord(a *Access, exp time.Time) (string, *store.Token, error) {
	raw := secrets.NewOpaqueToken(secrets.RefreshTokenPrefix)
	l := a.link()
	issued, _ := l.issued()
	t, err := toStored(a, s.cfg.Secrets.HashToken(raw), NewID(issued), store.TokenRefresh, exp)
	return raw, t, err
}

// ResolveRefresh returns a presented refresh token's record and content, or why it cannot be used:
// malformed, unknown, wrong_type, expired, revoked, or reused (already exchanged for a successor;
// the record is returned so the caller can revoke its grant). The error is for server faults only.
func (s *Service) ResolveRefresh(ctx context.Context, raw string) (*store.Token, *Access, *Inactive, error) {
	if !strings.HasPrefix(raw, secrets.RefreshTokenPrefix) || !secrets.LooksOpaque(raw) {
		if secrets.LooksOpaque(raw) || strings.Count(raw, ".") == 2 {
			return nil, nil, &Inactive{Code: "wrong_type", Detail: "an access token is not a refresh token"}, nil
		}
		return nil, nil, &Inactive{Code: "malformed", Detail: "not a Signet refresh token (sgn_rt_…)"}, nil
	}
	t, err := s.cfg.Store.GetToken(ctx, s.cfg.Secrets.HashToken(raw))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, &Inactive{Code: "unknown", Detail: "no refresh token with this value was issued here (or it was pruned after expiry)"}, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if t.Kind != store.TokenRefresh {
		return nil, nil, &Inactive{Code: "wrong_type", Detail: "token " + t.ID + " is a " + t.Kind}, nil
	}
	a, err := fromStored(t, s.cfg.Issuer)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("refresh token %s: stored claims: %w", t.ID, err)
	}
	now := s.cfg.Now()
	switch {
	case !t.RevokedAt.IsZero():
		return t, a, &Inactive{Code: "revoked", Detail: "refresh token " + t.ID + " was revoked at " + t.RevokedAt.UTC().Format(time.RFC3339), Access: a}, nil
	case !t.UsedAt.IsZero():
		return t, a, &Inactive{Code: "reused", Detail: "refresh token " + t.ID + " was already used at " + t.UsedAt.UTC().Format(time.RFC3339), Access: a}, nil
	}
	// The stored record's expiry is the refresh token's; a's is the same.
	if _, inactive, err := s.active(ctx, a, now); inactive != nil || err != nil {
		return t, a, inactive, err
	}
	return t, a, nil, nil
}
