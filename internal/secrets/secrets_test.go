package secrets

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testKeys(t *testing.T, b byte) *Keys {
	t.Helper()
	k, err := New(bytes.Repeat([]byte{b}, MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealBindsKeyAndContext(t *testing.T) {
	k := testKeys(t, 1)
	sealed := k.Seal([]byte("private key"), []byte("kid-1"))
	if bytes.Contains(sealed, []byte("private key")) {
		t.Fatal("sealed data contains the plaintext")
	}
	if pt, err := k.Open(sealed, []byte("kid-1")); err != nil || string(pt) != "private key" {
		t.Fatalf("open: %q %v", pt, err)
	}
	if _, err := k.Open(sealed, []byte("kid-2")); err != ErrUnseal {
		t.Fatalf("other context must fail: %v", err)
	}
	if _, err := testKeys(t, 2).Open(sealed, []byte("kid-1")); err != ErrUnseal {
		t.Fatalf("other master key must fail: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(sealed, []byte("kid-1")); err != ErrUnseal {
		t.Fatalf("tampered data must fail: %v", err)
	}
	if _, err := k.Open([]byte("short"), nil); err != ErrUnseal {
		t.Fatalf("short input must fail: %v", err)
	}
}

func TestSecretsAndTokensAreKeyedHashes(t *testing.T) {
	k := testKeys(t, 1)
	secret, salt, hash := k.NewSecret()
	if !k.VerifySecret(salt, hash, secret) || k.VerifySecret(salt, hash, secret+"x") || k.VerifySecret(salt, nil, secret) {
		t.Fatal("secret verification is wrong")
	}
	if bytes.Equal(testKeys(t, 2).HashSecret(salt, secret), hash) {
		t.Fatal("hash must depend on the master key")
	}
	tok := NewOpaqueToken(AccessTokenPrefix)
	if !LooksOpaque(tok) || LooksOpaque(tok[:len(tok)-1]) || LooksOpaque("sgn_xx_"+tok[7:]) {
		t.Fatalf("opaque token shape: %q", tok)
	}
	if bytes.Equal(k.HashToken(tok), k.HashSecret(nil, tok)) {
		t.Fatal("token and secret hashes must use different keys")
	}
	if k.Fingerprint() == testKeys(t, 2).Fingerprint() {
		t.Fatal("fingerprints must differ between master keys")
	}
}

func TestPasswordHash(t *testing.T) {
	h := HashPassword("correct horse")
	if !VerifyPassword(h, "correct horse") || VerifyPassword(h, "wrong") {
		t.Fatal("password verification is wrong")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2id$v=19$m=99999999,t=1,p=1$AA$AA", "$bcrypt$x$y$z$w"} {
		if VerifyPassword(bad, "x") {
			t.Fatalf("%q must not verify", bad)
		}
	}
}

func TestLoadMasterKey(t *testing.T) {
	dir := t.TempDir()
	k1, created, err := LoadMasterKey("", dir)
	if err != nil || !created {
		t.Fatalf("first load: %v %v", created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "master.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.key mode: %v %v", fi.Mode(), err)
	}
	k2, created, err := LoadMasterKey("", dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatal("second load must reuse the file")
	}
	if _, _, err := LoadMasterKey("too-short", dir); err == nil {
		t.Fatal("a short key must be refused")
	}
	k3, _, err := LoadMasterKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", dir)
	if err != nil || string(k3) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("explicit key: %q %v", k3, err)
	}
}

func TestSortableIDsSortByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	a, b := NewSortableID(t0), NewSortableID(t0.Add(time.Millisecond))
	if len(a) != 32 || len(b) != 32 || !(a < b) {
		t.Fatalf("%s then %s: want 32 hex characters ordered by time", a, b)
	}
	if NewSortableID(t0) == NewSortableID(t0) {
		t.Fatal("two IDs of the same millisecond are equal: the random part is missing")
	}
	at := t0.Add(1234567 * time.Microsecond)
	if got, ok := SortableIDTime(NewSortableID(at)); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
		t.Fatalf("SortableIDTime gives %s %v, want %s", got, ok, at.Truncate(time.Millisecond))
	}
	if _, ok := SortableIDTime("not-hex-at-all"); ok {
		t.Fatal("a value that is not a sortable ID must say so")
	}
}

// TestAuditKeyFixedVector pins the audit chain's key derivation: every keyed audit event ever
// written depends on it. The expected value is HKDF-SHA-256 (RFC 5869) with an empty salt and info
// "signet audit chain v1", computed here step by step with crypto/hmac (extract, then one expand
// block) and checked against the vector computed outside Go.
func TestAuditKeyFixedVector(t *testing.T) {
	master := make([]byte, MasterKeySize)
	for i := range master {
		master[i] = byte(i) // 00 01 02 … 1f
	}
	k, err := New(master)
	if err != nil {
		t.Fatal(err)
	}
	const want = "dec33e08301b18dda3afaf95bf2ebf7a6026b93296fcf5601681103fe8f43d4f"
	extract := hmac.New(sha256.New, make([]byte, sha256.Size))
	extract.Write(master)
	expand := hmac.New(sha256.New, extract.Sum(nil))
	expand.Write([]byte("signet audit chain v1\x01"))
	if got := hex.EncodeToString(expand.Sum(nil)); got != want {
		t.Fatalf("RFC 5869 by hand gives %s, the vector says %s", got, want)
	}
	if got := hex.EncodeToString(k.AuditKey()); got != want {
		t.Fatalf("AuditKey = %s, want %s", got, want)
	}
}

// TestAuditKeyIsIndependent: the audit key has its own label (no other purpose's key equals it), it
// depends on the master key, and callers cannot change the key the Keys hold.
func TestAuditKeyIsIndependent(t *testing.T) {
	k := testKeys(t, 1)
	master := bytes.Repeat([]byte{1}, MasterKeySize)
	for _, label := range []string{"seal v1", "fingerprint v1", "client secret v1", "opaque token v1"} {
		other, err := hkdf.Key(sha256.New, master, nil, "signet "+label, 32)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(other, k.AuditKey()) {
			t.Fatalf("the audit key equals the %q key", label)
		}
	}
	if bytes.Equal(k.AuditKey(), testKeys(t, 2).AuditKey()) {
		t.Fatal("the audit key must depend on the master key")
	}
	key := k.AuditKey()
	key[0] ^= 0xff
	if bytes.Equal(key, k.AuditKey()) {
		t.Fatal("AuditKey must return a copy")
	}
}
