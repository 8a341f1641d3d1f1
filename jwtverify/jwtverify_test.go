package jwtverify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type fixture struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newFixture(t testing.TB) *fixture {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, d, _ := ed25519.GenerateKey(rand.Reader)
	return &fixture{rsa: r, ec: e, ed: d}
}

func (f *fixture) keys(ctx context.Context, kid string) (*Key, error) {
	switch kid {
	case "rsa":
		return &Key{ID: kid, Public: f.rsa.Public(), Owner: "test"}, nil
	case "ec":
		return &Key{ID: kid, Public: f.ec.Public(), Owner: "test"}, nil
	case "ed":
		return &Key{ID: kid, Public: f.ed.Public(), Owner: "test"}, nil
	case "revoked":
		return &Key{ID: kid, Public: f.ec.Public(), RevokedAt: now.Add(-time.Minute)}, nil
	case "expired":
		return &Key{ID: kid, Public: f.ec.Public(), ExpiresAt: now.Add(-time.Minute)}, nil
	case "ec-pinned-es384":
		return &Key{ID: kid, Public: f.ec.Public(), Algorithm: "ES384"}, nil
	case "broken-store":
		return nil, errors.New("database down")
	}
	return nil, ErrUnknownKey
}

func sign(t testing.TB, key crypto.Signer, alg, kid, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jws.CompactSerialize()
	return out
}

func claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{"iss": "svc", "sub": "svc", "aud": "https://issuer", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "j1"}
	if mod != nil {
		mod(c)
	}
	return c
}

func handmade(header, claims map[string]any, sig []byte, hmacKey []byte) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	input := enc(header) + "." + enc(claims)
	if hmacKey != nil {
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

var strict = Options{Issuer: "svc", Subject: "svc", Audiences: []string{"https://issuer"}, Now: func() time.Time { return now },
	Leeway: time.Minute, MaxLifetime: time.Hour, RequireJTI: true, RequireIAT: true, RequireExp: true}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(f.rsa.Public()))})
	for _, tc := range []struct {
		name   string
		token  string
		opts   Options
		reason Reason
	}{
		{"RS256 valid", sign(t, f.rsa, "RS256", "rsa", "", claims(nil)), strict, ""},
		{"ES256 valid", sign(t, f.ec, "ES256", "ec", "", claims(nil)), strict, ""},
		{"EdDSA valid", sign(t, f.ed, "EdDSA", "ed", "", claims(nil)), strict, ""},
		{"aud as array", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["aud"] = []string{"x", "https://issuer"} })), strict, ""},
		{"exactly one hour plus clock skew", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["exp"] = now.Add(time.Hour + 30*time.Second).Unix() })), strict, ""},
		{"alg none", handmade(map[string]any{"alg": "none", "kid": "ec"}, claims(nil), nil, nil), strict, ReasonAlgorithm},
		{"HS256 keyed with the public key PEM", handmade(map[string]any{"alg": "HS256", "kid": "rsa"}, claims(nil), nil, pubPEM), strict, ReasonAlgorithm},
		{"RS256 header on an EC key", handmade(map[string]any{"alg": "RS256", "kid": "ec"}, claims(nil), []byte("x"), nil), strict, ReasonAlgorithm},
		{"alg other than the key's pinned one", sign(t, f.ec, "ES256", "ec-pinned-es384", "", claims(nil)), strict, ReasonAlgorithm},
		{"no kid", handmade(map[string]any{"alg": "ES256"}, claims(nil), []byte("x"), nil), strict, ReasonNoKeyID},
		{"unknown kid", sign(t, f.ec, "ES256", "nope", "", claims(nil)), strict, ReasonUnknownKey},
		{"revoked key", sign(t, f.ec, "ES256", "revoked", "", claims(nil)), strict, ReasonKeyRevoked},
		{"expired key", sign(t, f.ec, "ES256", "expired", "", claims(nil)), strict, ReasonKeyExpired},
		{"signed by another key", sign(t, mustEC(), "ES256", "ec", "", claims(nil)), strict, ReasonSignature},
		{"wrong issuer", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["iss"] = "other" })), strict, ReasonIssuer},
		{"wrong subject", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["sub"] = "other" })), strict, ReasonSubject},
		{"wrong audience", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["aud"] = "https://elsewhere" })), strict, ReasonAudience},
		{"expired", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(-2 * time.Minute).Unix()
		})), strict, ReasonExpired},
		{"expired within leeway", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) {
			c["iat"] = now.Add(-time.Hour).Unix()
			c["exp"] = now.Add(-30 * time.Second).Unix()
		})), strict, ""},
		{"nbf in the future", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), strict, ReasonNotYetValid},
		{"iat in the future", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) {
			c["iat"] = now.Add(5 * time.Minute).Unix()
			c["exp"] = now.Add(10 * time.Minute).Unix()
		})), strict, ReasonIssuedInFuture},
		{"lifetime one second too long", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["exp"] = now.Add(time.Hour + time.Minute + time.Second).Unix() })), strict, ReasonLifetime},
		{"missing jti", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { delete(c, "jti") })), strict, ReasonMissingClaim},
		{"missing exp", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { delete(c, "exp") })), strict, ReasonMissingClaim},
		{"typ required and right", sign(t, f.ec, "ES256", "ec", "at+jwt", claims(nil)), Options{Type: "application/at+jwt", Now: strict.Now}, ""},
		{"typ required and wrong", sign(t, f.ec, "ES256", "ec", "JWT", claims(nil)), Options{Type: "at+jwt", Now: strict.Now}, ReasonType},
		{"exp not a number", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["exp"] = "tomorrow" })), strict, ReasonMalformed},
		{"aud of numbers", sign(t, f.ec, "ES256", "ec", "", claims(func(c map[string]any) { c["aud"] = []int{1} })), strict, ReasonMalformed},
		{"JWE", "a.b.c.d.e", strict, ReasonMalformed},
		{"two parts", "a.b", strict, ReasonMalformed},
		{"garbage header", "!!.e30.AA", strict, ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Verify(context.Background(), tc.token, f.keys, tc.opts)
			if tc.reason == "" {
				if err != nil || tok.Key == nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ve *Error
			if !errors.As(err, &ve) || ve.Reason != tc.reason {
				t.Fatalf("want reason %s, got %v", tc.reason, err)
			}
			if ve.Error() == "" {
				t.Fatal("empty message")
			}
		})
	}
	t.Run("store failure is not a refusal", func(t *testing.T) {
		_, err := Verify(context.Background(), sign(t, f.ec, "ES256", "broken-store", "", claims(nil)), f.keys, strict)
		var ve *Error
		if err == nil || errors.As(err, &ve) {
			t.Fatalf("a key lookup failure must be a plain error, got %v", err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustEC() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) }

// FuzzVerify feeds arbitrary strings: Verify never panics and refusals are *Error.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	f.Add(sign(f, fx.ec, "ES256", "ec", "", claims(nil)))
	f.Add(sign(f, fx.rsa, "RS256", "rsa", "at+jwt", claims(nil)))
	f.Add(handmade(map[string]any{"alg": "none", "kid": "ec"}, claims(nil), nil, nil))
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjFlMzAwfQ.AA")
	f.Add("a.b.c.d.e")
	keys := func(ctx context.Context, kid string) (*Key, error) {
		if kid == "broken-store" {
			return nil, ErrUnknownKey
		}
		return fx.keys(ctx, kid)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := Verify(context.Background(), raw, keys, strict)
		var ve *Error
		if err != nil && !errors.As(err, &ve) {
			t.Fatalf("non-*Error refusal %T: %v", err, err)
		}
	})
}
