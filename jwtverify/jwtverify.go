// Package jwtverify is Signet's one strict JWT validator, used for client assertions, the JWT bearer
// grant, subject and actor tokens, Signet's own access tokens and by resource servers. It accepts
// only asymmetric signatures whose algorithm fits the key (no "none", no HMAC, no algorithm
// confusion) and reports every refusal as an *Error with a machine-readable Reason and the expected
// and presented values, so callers can tell people exactly what to change.
package jwtverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxTokenSize bounds the compact serialization accepted.
const MaxTokenSize = 16 << 10

// Key is a verification key with what is known about its validity.
type Key struct {
	ID        string
	Public    crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey (P-256), ed25519.PublicKey
	Algorithm string           // when set, the only alg accepted for this key
	ExpiresAt time.Time        // zero: never
	RevokedAt time.Time        // zero: not revoked
	Owner     string           // who the key belongs to, for messages
}

// KeyFunc finds the key for a kid; it returns an error wrapping ErrUnknownKey when there is none.
type KeyFunc func(ctx context.Context, kid string) (*Key, error)

// ErrUnknownKey is returned (wrapped) by a KeyFunc for an unknown kid.
var ErrUnknownKey = errors.New("unknown key")

// Options say what a valid token must satisfy.
type Options struct {
	Issuer      string           // required iss (exact); empty: not checked
	Subject     string           // required sub (exact); empty: not checked
	Audiences   []string         // aud must contain at least one; empty: not checked
	Type        string           // required typ header (RFC 8725 §3.11); empty: not checked
	Now         func() time.Time // nil: time.Now
	Leeway      time.Duration    // clock skew allowed on exp, nbf and iat
	MaxLifetime time.Duration    // exp - iat must be <= MaxLifetime + Leeway; 0: not checked
	RequireJTI  bool
	RequireIAT  bool
	RequireExp  bool
}

// Header is the JOSE header fields Signet reads.
type Header struct{ KeyID, Algorithm, Type string }

// Claims are the registered claims.
type Claims struct {
	Issuer, Subject                string
	Audience                       []string
	ExpiresAt, NotBefore, IssuedAt time.Time
	ID                             string
}

// Token is a parsed (and, from Verify, verified) JWT.
type Token struct {
	Header Header
	Claims Claims
	Raw    map[string]json.RawMessage // every claim
	Key    *Key                       // the verifying key; nil when unverified
}

// Reason is a machine-readable cause of refusal.
type Reason string

const (
	ReasonMalformed      Reason = "malformed"
	ReasonAlgorithm      Reason = "algorithm"
	ReasonNoKeyID        Reason = "no_kid"
	ReasonUnknownKey     Reason = "unknown_key"
	ReasonKeyRevoked     Reason = "key_revoked"
	ReasonKeyExpired     Reason = "key_expired"
	ReasonSignature      Reason = "signature"
	ReasonType           Reason = "type"
	ReasonIssuer         Reason = "issuer"
	ReasonSubject        Reason = "subject"
	ReasonAudience       Reason = "audience"
	ReasonExpired        Reason = "expired"
	ReasonNotYetValid    Reason = "not_yet_valid"
	ReasonIssuedInFuture Reason = "iat_future"
	ReasonLifetime       Reason = "lifetime"
	ReasonMissingClaim   Reason = "missing_claim"
)

// Error is a refusal. Expected and Got hold values safe to show the presenter.
type Error struct {
	Reason   Reason
	Expected string
	Got      string
	Token    *Token // the unverified token when it could be parsed
}

func (e *Error) Error() string {
	switch e.Reason {
	case ReasonMalformed:
		return "malformed JWT: " + e.Got
	case ReasonAlgorithm:
		return fmt.Sprintf("algorithm %q is not accepted (accepted: %s)", e.Got, e.Expected)
	case ReasonNoKeyID:
		return "the JWT header has no kid"
	case ReasonUnknownKey:
		return fmt.Sprintf("unknown key %q", e.Got)
	case ReasonKeyRevoked:
		return "the key was revoked at " + e.Got
	case ReasonKeyExpired:
		return "the key expired at " + e.Got
	case ReasonSignature:
		return "the signature does not verify"
	case ReasonMissingClaim:
		return fmt.Sprintf("the %q claim is missing", e.Expected)
	case ReasonLifetime:
		return fmt.Sprintf("lifetime %s exceeds %s", e.Got, e.Expected)
	}
	return fmt.Sprintf("%s: got %q, expected %q", e.Reason, e.Got, e.Expected)
}

func fail(r Reason, expected, got string, t *Token) *Error {
	return &Error{Reason: r, Expected: expected, Got: got, Token: t}
}

// AlgorithmsFor returns the algorithms that fit a public key's type.
func AlgorithmsFor(pub crypto.PublicKey) []string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}
		case elliptic.P384():
			return []string{"ES384"}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// asymmetric lists every algorithm that can verify at all; everything else (none, HS*) is refused
// before any key is looked up.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}

// ParseUnverified decodes header and claims without checking anything.
func ParseUnverified(raw string) (*Token, error) {
	if len(raw) > MaxTokenSize {
		return nil, fail(ReasonMalformed, "", fmt.Sprintf("longer than %d bytes", MaxTokenSize), nil)
	}
	parts := strings.Split(raw, ".")
	if len(parts) == 5 {
		return nil, fail(ReasonMalformed, "", "an encrypted JWT (JWE); a signed JWT (JWS) is required", nil)
	}
	if len(parts) != 3 {
		return nil, fail(ReasonMalformed, "", "not three dot-separated parts", nil)
	}
	var h struct {
		Alg  any    `json:"alg"`
		Kid  any    `json:"kid"`
		Typ  any    `json:"typ"`
		Crit []any  `json:"crit"`
		Enc  string `json:"enc"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, fail(ReasonMalformed, "", "the header is not base64url-encoded JSON", nil)
	}
	t := &Token{}
	var ok bool
	if t.Header.Algorithm, ok = optString(h.Alg); !ok {
		return nil, fail(ReasonMalformed, "", "alg is not a string", nil)
	}
	if t.Header.KeyID, ok = optString(h.Kid); !ok {
		return nil, fail(ReasonMalformed, "", "kid is not a string", nil)
	}
	if t.Header.Type, ok = optString(h.Typ); !ok {
		return nil, fail(ReasonMalformed, "", "typ is not a string", nil)
	}
	cb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fail(ReasonMalformed, "", "the claims are not base64url-encoded", t)
	}
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	if err := dec.Decode(&t.Raw); err != nil || t.Raw == nil {
		return nil, fail(ReasonMalformed, "", "the claims are not a JSON object", t)
	}
	if err := t.Claims.parse(t.Raw); err != nil {
		return nil, fail(ReasonMalformed, "", err.Error(), t)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return nil, fail(ReasonMalformed, "", "the signature is not base64url-encoded", t)
	}
	return t, nil
}

func optString(v any) (string, bool) {
	if v == nil {
		return "", true
	}
	s, ok := v.(string)
	return s, ok
}

func (c *Claims) parse(raw map[string]json.RawMessage) error {
	str := func(name string, dst *string) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if json.Unmarshal(v, dst) != nil {
			return fmt.Errorf("%s is not a string", name)
		}
		return nil
	}
	date := func(name string, dst *time.Time) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		var f float64
		if json.Unmarshal(v, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			return fmt.Errorf("%s is not a NumericDate", name)
		}
		sec, frac := math.Modf(f)
		*dst = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		return nil
	}
	for _, err := range []error{
		str("iss", &c.Issuer), str("sub", &c.Subject), str("jti", &c.ID),
		date("exp", &c.ExpiresAt), date("nbf", &c.NotBefore), date("iat", &c.IssuedAt),
	} {
		if err != nil {
			return err
		}
	}
	if v, ok := raw["aud"]; ok && string(v) != "null" {
		var one string
		if json.Unmarshal(v, &one) == nil {
			c.Audience = []string{one}
		} else if json.Unmarshal(v, &c.Audience) != nil {
			return errors.New("aud is neither a string nor an array of strings")
		}
	}
	return nil
}

// Verify parses raw, checks its signature with the key its kid names and then every option.
func Verify(ctx context.Context, raw string, keys KeyFunc, opts Options) (*Token, error) {
	t, err := ParseUnverified(raw)
	if err != nil {
		return nil, err
	}
	alg := t.Header.Algorithm
	if !slices.Contains(asymmetric, alg) {
		return nil, fail(ReasonAlgorithm, "RS256, ES256 or EdDSA", alg, t)
	}
	if t.Header.KeyID == "" {
		return nil, fail(ReasonNoKeyID, "", "", t)
	}
	key, err := keys(ctx, t.Header.KeyID)
	if errors.Is(err, ErrUnknownKey) {
		return nil, fail(ReasonUnknownKey, "", t.Header.KeyID, t)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up key %q: %w", t.Header.KeyID, err)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	at := now()
	if !key.RevokedAt.IsZero() && !key.RevokedAt.After(at) {
		return nil, fail(ReasonKeyRevoked, "", key.RevokedAt.UTC().Format(time.RFC3339), t)
	}
	if !key.ExpiresAt.IsZero() && !key.ExpiresAt.After(at) {
		return nil, fail(ReasonKeyExpired, "", key.ExpiresAt.UTC().Format(time.RFC3339), t)
	}
	fits := AlgorithmsFor(key.Public)
	if key.Algorithm != "" {
		fits = slices.DeleteFunc(slices.Clone(fits), func(a string) bool { return a != key.Algorithm })
	}
	if !slices.Contains(fits, alg) {
		return nil, fail(ReasonAlgorithm, strings.Join(fits, " or "), alg, t)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return nil, fail(ReasonMalformed, "", "not a compact JWS", t)
	}
	if _, err := jws.Verify(key.Public); err != nil {
		return nil, fail(ReasonSignature, "", "", t)
	}
	t.Key = key
	if err := check(t, opts, at); err != nil {
		t.Key = nil
		return nil, err
	}
	return t, nil
}

// check applies the claim rules to a verified token.
func check(t *Token, o Options, now time.Time) error {
	c := &t.Claims
	if o.Type != "" && !typeMatches(t.Header.Type, o.Type) {
		return fail(ReasonType, o.Type, t.Header.Type, t)
	}
	if o.Issuer != "" && c.Issuer != o.Issuer {
		return fail(ReasonIssuer, o.Issuer, c.Issuer, t)
	}
	if o.Subject != "" && c.Subject != o.Subject {
		return fail(ReasonSubject, o.Subject, c.Subject, t)
	}
	if len(o.Audiences) > 0 && !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(o.Audiences, a) }) {
		got := "(none)"
		if len(c.Audience) > 0 {
			got = fmt.Sprintf("%q", c.Audience)
			if len(c.Audience) == 1 {
				got = fmt.Sprintf("%q", c.Audience[0])
			}
		}
		return fail(ReasonAudience, strings.Join(o.Audiences, ", "), got, t)
	}
	for _, req := range []struct {
		need bool
		name string
		zero bool
	}{
		{o.RequireExp, "exp", c.ExpiresAt.IsZero()},
		{o.RequireIAT || o.MaxLifetime > 0, "iat", c.IssuedAt.IsZero()},
		{o.RequireJTI, "jti", c.ID == ""},
	} {
		if req.need && req.zero {
			return fail(ReasonMissingClaim, req.name, "", t)
		}
	}
	stamp := func(x time.Time) string { return x.UTC().Format(time.RFC3339) }
	if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt.Add(o.Leeway)) {
		return fail(ReasonExpired, "", stamp(c.ExpiresAt), t)
	}
	if !c.NotBefore.IsZero() && now.Add(o.Leeway).Before(c.NotBefore) {
		return fail(ReasonNotYetValid, "", stamp(c.NotBefore), t)
	}
	if !c.IssuedAt.IsZero() && now.Add(o.Leeway).Before(c.IssuedAt) {
		return fail(ReasonIssuedInFuture, "", stamp(c.IssuedAt), t)
	}
	if o.MaxLifetime > 0 && !c.ExpiresAt.IsZero() && c.ExpiresAt.Sub(c.IssuedAt) > o.MaxLifetime+o.Leeway {
		return fail(ReasonLifetime, o.MaxLifetime.String(), c.ExpiresAt.Sub(c.IssuedAt).String(), t)
	}
	return nil
}

// typeMatches compares typ values per RFC 8725 §3.11 / RFC 7515 §4.1.9: case-insensitive, with an
// optional "application/" prefix.
func typeMatches(got, want string) bool {
	norm := func(s string) string { return strings.TrimPrefix(strings.ToLower(s), "application/") }
	return norm(got) == norm(want)
}
