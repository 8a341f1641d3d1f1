package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/secrets"
	"github.com/signet-id/signet/internal/store"
	"github.com/signet-id/signet/internal/store/sqlite"
	"github.com/signet-id/signet/jwtverify"
)

// sqliteStore is the real store in a temp dir: the store conformance suite states how it rotates,
// this package's tests rely on that.
func sqliteStore(t testing.TB) Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "signet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// publishedKIDs returns the key IDs m's JWKS publishes, sorted.
func publishedKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(m.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// keyIDs returns the IDs of m's keys of alg in state.
func keyIDs(m *Manager, alg, state string) []string {
	var ids []string
	for _, k := range m.List() {
		if k.Algorithm == alg && k.State == state {
			ids = append(ids, k.ID)
		}
	}
	return ids
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
	st := sqliteStore(t)
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
	stored, err := st.ListSigningKeys(ctx)
	if err != nil || len(stored) != 6 {
		t.Fatalf("stored keys: %d %v", len(stored), err)
	}
	for _, k := range stored {
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

// TestRetiredKeysExpireFromJWKS: after a rotation the former next key signs, a new next key is
// published, and the retired key stays published for the retention and not beyond.
func TestRetiredKeysExpireFromJWKS(t *testing.T) {
	ctx := context.Background()
	st := sqliteStore(t)
	m := NewManager(st, masterKeys(t, 1), time.Minute)
	if _, err := m.Ensure(ctx, ES256); err != nil {
		t.Fatal(err)
	}
	active, next := keyIDs(m, ES256, store.SigningActive), keyIDs(m, ES256, store.SigningNext)
	if len(active) != 1 || len(next) != 1 {
		t.Fatalf("Ensure must create one active and one next key: %+v", m.List())
	}
	rotatedAt := time.Now()
	if err := m.Rotate(ctx, ES256, rotatedAt); err != nil {
		t.Fatal(err)
	}
	if got := keyIDs(m, ES256, store.SigningActive); !slices.Equal(got, next) {
		t.Fatalf("rotation must promote the pre-published next key %v, active now %v", next, got)
	}
	newNext := keyIDs(m, ES256, store.SigningNext)
	if len(newNext) != 1 || newNext[0] == next[0] || newNext[0] == active[0] {
		t.Fatalf("rotation must pre-publish a new next key: %+v", m.List())
	}
	within := []string{active[0], next[0], newNext[0]}
	slices.Sort(within)
	if got := publishedKIDs(t, m); !slices.Equal(got, within) {
		t.Fatalf("within the retention the JWKS must publish the retired, active and next keys %v, got %v", within, got)
	}
	m.now = func() time.Time { return rotatedAt.Add(2 * time.Minute) }
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	beyond := []string{next[0], newNext[0]}
	slices.Sort(beyond)
	if got := publishedKIDs(t, m); !slices.Equal(got, beyond) {
		t.Fatalf("a key retired beyond the retention must not be published: want %v, got %v", beyond, got)
	}
	if k, err := m.Key(ctx, active[0]); err == nil {
		t.Fatalf("a key retired beyond the retention must not verify: %+v", k)
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
		m := NewManager(sqliteStore(b), masterKeys(b, 1), time.Hour)
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
