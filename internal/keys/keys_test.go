package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/profile"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/jwtverify"
)

// memStore is an in-memory keys.Store with the rotation semantics store.go documents.
type memStore struct {
	mu   sync.Mutex
	keys []store.SigningKey
}

func (m *memStore) CreateSigningKey(_ context.Context, k *store.SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, *k)
	return nil
}

func (m *memStore) ListSigningKeys(context.Context) ([]store.SigningKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.SigningKey(nil), m.keys...), nil
}

func (m *memStore) RotateSigningKey(_ context.Context, alg string, next *store.SigningKey, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	promoted := false
	for i := range m.keys {
		k := &m.keys[i]
		if k.Algorithm != alg {
			continue
		}
		switch k.State {
		case store.SigningActive:
			k.State, k.RetiredAt = store.SigningRetired, now
		case store.SigningNext:
			k.State, k.ActivatedAt, promoted = store.SigningActive, now, true
		}
	}
	n := *next
	if !promoted {
		n.State, n.ActivatedAt = store.SigningActive, now
	}
	m.keys = append(m.keys, n)
	return nil
}

func (m *memStore) DeleteSigningKeys(_ context.Context, before time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.keys[:0]
	n := 0
	for _, k := range m.keys {
		if k.State == store.SigningRetired && k.RetiredAt.Before(before) {
			n++
			continue
		}
		kept = append(kept, k)
	}
	m.keys = kept
	return n, nil
}

func masterKeys(t testing.TB, b byte) *secrets.Keys {
	k, err := secrets.New(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestManagerSignsRotatesAndPublishes(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	m := NewManager(st, masterKeys(t, 1), time.Hour)
	for _, alg := range []string{ES256, EdDSA, RS256} {
		created, err := m.Ensure(ctx, alg)
		if err != nil || !created {
			t.Fatalf("ensure %s: %v %v", alg, created, err)
		}
	}
	if created, _ := m.Ensure(ctx, ES256); created {
		t.Fatal("a second Ensure must not create keys")
	}
	if got := m.Algorithms(); strings.Join(got, ",") != "ES256,EdDSA,RS256" {
		t.Fatalf("algorithms %v", got)
	}
	for _, k := range st.keys {
		if bytes.Contains(k.PrivateKey, []byte("PRIVATE")) || len(k.PrivateKey) < 32 {
			t.Fatal("private keys must be sealed at rest")
		}
	}
	verify := func(raw string) error {
		_, err := jwtverify.Verify(ctx, raw, m.Key, jwtverify.Options{Type: "at+jwt", RequireExp: true})
		return err
	}
	claims := map[string]any{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()}
	signed := map[string]string{}
	for _, alg := range m.Algorithms() {
		raw, err := m.Sign(alg, "at+jwt", claims)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(raw); err != nil {
			t.Fatalf("%s token does not verify: %v", alg, err)
		}
		signed[alg] = raw
	}
	if err := m.Rotate(ctx, ES256, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := verify(signed[ES256]); err != nil {
		t.Fatalf("a token signed before rotation must still verify: %v", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 7 { // ES256 next+active+retired, EdDSA and RS256 active+next
		t.Fatalf("JWKS has %d keys", len(set.Keys))
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Use != "sig" || k.KeyID == "" || k.Algorithm == "" {
			t.Fatalf("JWKS entry %+v", k)
		}
	}
	if _, err := m.Sign("HS256", "", claims); err == nil {
		t.Fatal("signing with an unknown algorithm must fail")
	}

	other := NewManager(st, masterKeys(t, 2), time.Hour)
	if err := other.Load(ctx); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("loading with another master key: %v", err)
	}
}

func TestRetiredKeysExpireFromJWKS(t *testing.T) {
	ctx := context.Background()
	st := &memStore{}
	m := NewManager(st, masterKeys(t, 1), time.Minute)
	m.Ensure(ctx, ES256)
	m.Rotate(ctx, ES256, time.Now().Add(-2*time.Minute))
	m.Load(ctx)
	var set jose.JSONWebKeySet
	json.Unmarshal(m.JWKS(), &set)
	if len(set.Keys) != 2 {
		t.Fatalf("a key retired beyond the retention must not be published: %d keys", len(set.Keys))
	}
}

// TestKeyFilesWorkWithZitadel writes a key file per algorithm and builds the JWT-profile assertion
// with zitadel/oidc's own loader; Signet's validator accepts it.
func TestKeyFilesWorkWithZitadel(t *testing.T) {
	for _, alg := range []string{RS256, ES256, EdDSA} {
		t.Run(alg, func(t *testing.T) {
			priv, pub, err := GenerateKeyPair(alg)
			if err != nil {
				t.Fatal(err)
			}
			kf := KeyFile{Type: TypeServiceAccount, KeyID: "k1", Key: string(priv), UserID: "sa-1"}
			b, _ := json.Marshal(kf)
			path := filepath.Join(t.TempDir(), "key.json")
			os.WriteFile(path, b, 0o600)
			if _, err := ParseKeyFile(b); err != nil {
				t.Fatal(err)
			}
			zf, err := client.ConfigFromKeyFile(path)
			if err != nil {
				t.Fatalf("zitadel cannot read the key file: %v", err)
			}
			signer, err := client.NewSignerFromPrivateKeyByte([]byte(zf.Key), zf.KeyID)
			if err != nil {
				t.Fatalf("zitadel cannot load a %s key: %v", alg, err)
			}
			assertion, err := client.SignedJWTProfileAssertion(zf.UserID, []string{"https://issuer"}, time.Hour, signer)
			if err != nil {
				t.Fatal(err)
			}
			pubKey, pubAlg, err := ParsePublicKeyPEM(pub)
			if err != nil || pubAlg != alg {
				t.Fatalf("public key: %v %s", err, pubAlg)
			}
			keyFunc := func(context.Context, string) (*jwtverify.Key, error) {
				return &jwtverify.Key{ID: "k1", Public: pubKey, Algorithm: pubAlg}, nil
			}
			if _, err := jwtverify.Verify(context.Background(), assertion, keyFunc, jwtverify.Options{
				Issuer: "sa-1", Subject: "sa-1", Audiences: []string{"https://issuer"}, MaxLifetime: time.Hour, Leeway: time.Minute,
				RequireExp: true, RequireIAT: true, RequireJTI: true,
			}); err != nil {
				t.Fatalf("zitadel's assertion is refused: %v", err)
			}
			if _, err := profile.NewJWTProfileTokenSourceFromKeyFileData(context.Background(), "http://127.0.0.1:1", b, nil, profile.WithStaticTokenEndpoint("http://127.0.0.1:1", "http://127.0.0.1:1/oauth/v2/token")); err != nil {
				t.Fatalf("zitadel's profile package cannot load the key file: %v", err)
			}
		})
	}
}

func TestParseKeyFileExplainsProblems(t *testing.T) {
	priv, _, _ := GenerateKeyPair(ES256)
	for _, tc := range []struct{ in, want string }{
		{`nope`, "not JSON"},
		{`{"type":"user"}`, `"type" is "user"`},
		{`{"type":"serviceaccount","keyId":"k"}`, `no "userId"`},
		{`{"type":"application","keyId":"k"}`, `no "clientId"`},
		{`{"type":"serviceaccount","userId":"u"}`, `no "keyId"`},
		{`{"type":"serviceaccount","userId":"u","keyId":"k","key":"garbage"}`, "no PEM block"},
	} {
		if _, err := ParseKeyFile([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want %q, got %v", tc.in, tc.want, err)
		}
	}
	good, _ := json.Marshal(KeyFile{Type: TypeApplication, KeyID: "k", Key: string(priv), ClientID: "c", AppID: "c"})
	kf, err := ParseKeyFile(good)
	if err != nil || kf.Subject() != "c" {
		t.Fatalf("application key file: %v", err)
	}
}

func FuzzParseKeyFile(f *testing.F) {
	priv, _, _ := GenerateKeyPair(ES256)
	good, _ := json.Marshal(KeyFile{Type: TypeServiceAccount, KeyID: "k", Key: string(priv), UserID: "u"})
	f.Add(good)
	f.Add([]byte(`{"type":"application","key":"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := ParseKeyFile(b)
		if err == nil && kf.Subject() == "" {
			t.Fatal("a parsed key file must name its owner")
		}
	})
}

func BenchmarkSign(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []string{ES256, EdDSA, RS256} {
		m := NewManager(&memStore{}, masterKeys(b, 1), time.Hour)
		if _, err := m.Ensure(ctx, alg); err != nil {
			b.Fatal(err)
		}
		claims := map[string]any{"iss": "http://localhost:8080", "sub": "client", "aud": []string{"client"}, "exp": 1, "iat": 1, "jti": "0123456789abcdef0123456789abcdef"}
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Sign(alg, "at+jwt", claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
