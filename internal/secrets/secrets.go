// Package secrets owns Signet's symmetric cryptography: the master key and the keys derived from it,
// sealing data at rest (signing keys), keyed hashes of client secrets and opaque tokens, the audit
// chain's key, password hashing, and random values. It must never log or return a secret in an error.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// MasterKeySize is the length of the master key in bytes.
const MasterKeySize = 32

// Keys holds the subkeys derived from the master key, one per purpose, so that a leak of one
// purpose's output says nothing about another's.
type Keys struct {
	seal        cipher.AEAD
	secretHMAC  *hmacPool
	tokenHMAC   *hmacPool
	auditKey    []byte
	fingerprint string
}

// hmacPool reuses keyed HMAC states: hashing a secret or token happens on every request.
type hmacPool struct{ p sync.Pool }

func newHMACPool(key []byte) *hmacPool {
	return &hmacPool{p: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// sum returns HMAC(key, parts...).
func (hp *hmacPool) sum(parts ...[]byte) []byte {
	m := hp.p.Get().(hash.Hash)
	m.Reset()
	for _, p := range parts {
		m.Write(p)
	}
	out := m.Sum(make([]byte, 0, sha256.Size))
	hp.p.Put(m)
	return out
}

// New derives the purpose keys from a 32-byte master key.
func New(master []byte) (*Keys, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(master))
	}
	derive := func(purpose string) []byte {
		k, err := hkdf.Key(sha256.New, master, nil, "signet "+purpose, 32)
		if err != nil {
			panic(err) // only on invalid lengths, which are constants here
		}
		return k
	}
	block, err := aes.NewCipher(derive("seal v1"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	fp := sha256.Sum256(derive("fingerprint v1"))
	return &Keys{
		seal:        aead,
		secretHMAC:  newHMACPool(derive("client secret v1")),
		tokenHMAC:   newHMACPool(derive("opaque token v1")),
		auditKey:    derive(auditKeyLabel),
		fingerprint: hex.EncodeToString(fp[:8]),
	}, nil
}

// auditKeyLabel is the HKDF info (after "signet ") of the audit chain's key. Changing it would make
// every keyed audit event fail verification, so it is fixed for good.
const auditKeyLabel = "audit chain v1"

// AuditKey returns the key of the audit log's HMAC chain (SPEC §8): HKDF-SHA-256 of the master key
// with no salt and info "signet audit chain v1", 32 bytes. It has its own label so that it is
// independent of the other derived keys: the store needs it to chain events, and holding it says
// nothing about sealed keys or secret hashes. The caller gets a copy.
func (k *Keys) AuditKey() []byte { return bytes.Clone(k.auditKey) }

// Fingerprint identifies the master key without revealing it, so a server can detect that it was
// started with a different master key than the one that sealed its data.
func (k *Keys) Fingerprint() string { return k.fingerprint }

// Seal encrypts plaintext with AES-256-GCM; aad binds the ciphertext to its context (a key ID).
func (k *Keys) Seal(plaintext, aad []byte) []byte {
	nonce := make([]byte, k.seal.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k.seal.Seal(nonce, nonce, plaintext, aad)
}

// ErrUnseal means sealed data could not be decrypted: wrong master key or tampered data.
var ErrUnseal = errors.New("cannot decrypt sealed data: wrong master key or corrupted data")

// Open decrypts what Seal produced with the same aad.
func (k *Keys) Open(sealed, aad []byte) ([]byte, error) {
	ns := k.seal.NonceSize()
	if len(sealed) < ns+k.seal.Overhead() {
		return nil, ErrUnseal
	}
	pt, err := k.seal.Open(nil, sealed[:ns], sealed[ns:], aad)
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// HashSecret returns the keyed hash stored for a client or service-account secret.
func (k *Keys) HashSecret(salt []byte, secret string) []byte {
	return k.secretHMAC.sum(salt, []byte(secret))
}

// VerifySecret compares a presented secret with a stored hash in constant time.
func (k *Keys) VerifySecret(salt, hash []byte, secret string) bool {
	if len(hash) == 0 {
		return false
	}
	return hmac.Equal(k.HashSecret(salt, secret), hash)
}

// HashToken returns the keyed hash under which an opaque token is stored and cached.
func (k *Keys) HashToken(token string) []byte {
	return k.tokenHMAC.sum([]byte(token))
}

// NewSecret returns a fresh client secret and the salt and hash to store for it.
func (k *Keys) NewSecret() (secret string, salt, hash []byte) {
	secret = RandomString(32)
	salt = RandomBytes(16)
	return secret, salt, k.HashSecret(salt, secret)
}

// Opaque token prefixes make leaked tokens recognisable to secret scanners.
const (
	AccessTokenPrefix  = "sgn_at_"
	RefreshTokenPrefix = "sgn_rt_"
	AuthCodePrefix     = "sgn_ac_" // authorization codes: one-time, a minute long
)

// NewOpaqueToken returns prefix followed by 32 random bytes in base64url.
func NewOpaqueToken(prefix string) string { return prefix + RandomString(32) }

// LooksOpaque reports whether s has the shape of a Signet opaque token.
func LooksOpaque(s string) bool {
	return (strings.HasPrefix(s, AccessTokenPrefix) || strings.HasPrefix(s, RefreshTokenPrefix)) && len(s) == len(AccessTokenPrefix)+43
}

// RandomBytes returns n bytes from crypto/rand.
func RandomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// RandomString returns n random bytes as unpadded base64url.
func RandomString(n int) string { return base64.RawURLEncoding.EncodeToString(RandomBytes(n)) }

// NewID returns a random identifier suitable for records and jti values (128 bits, hex).
func NewID() string { return hex.EncodeToString(RandomBytes(16)) }

// NewSortableID returns 32 hex characters like NewID, the first 12 the creation time in
// milliseconds and the rest 80 random bits: rows keyed by it are appended to the end of their
// index instead of dirtying a random page per insert.
func NewSortableID(now time.Time) string {
	b := RandomBytes(16)
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i], ms = byte(ms), ms>>8
	}
	return hex.EncodeToString(b)
}

// SortableIDTime is the time a NewSortableID carries, to the millisecond; false when id is not one.
func SortableIDTime(id string) (time.Time, bool) {
	if len(id) < 12 {
		return time.Time{}, false
	}
	b, err := hex.DecodeString(id[:12])
	if err != nil {
		return time.Time{}, false
	}
	var ms uint64
	for _, x := range b {
		ms = ms<<8 | uint64(x)
	}
	return time.UnixMilli(int64(ms)), true
}

// LoadMasterKey returns the master key from value (base64 or hex of 32 bytes) when it is not empty;
// otherwise it reads <dataDir>/master.key, generating that file (0600) on first use.
func LoadMasterKey(value, dataDir string) (key []byte, created bool, err error) {
	key, err = ReadMasterKey(value, dataDir)
	if err != nil || key != nil {
		return key, false, err
	}
	key, err = CreateMasterKey(dataDir)
	return key, err == nil, err
}

// ParseMasterKey decodes a master key given as base64 or hex of 32 bytes.
func ParseMasterKey(value string) ([]byte, error) { return decodeKey(strings.TrimSpace(value)) }

// MasterKeyPath is where the development master key lives in a data directory.
func MasterKeyPath(dataDir string) string { return filepath.Join(dataDir, "master.key") }

// ReadMasterKey returns the master key from value when it is not empty, else from
// <dataDir>/master.key; nil without error when that file does not exist.
func ReadMasterKey(value, dataDir string) ([]byte, error) {
	if value != "" {
		key, err := decodeKey(value)
		if err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		return key, nil
	}
	path := MasterKeyPath(dataDir)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	key, err := decodeKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// CreateMasterKey generates a master key into <dataDir>/master.key (0600); it never overwrites one.
func CreateMasterKey(dataDir string) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	key := RandomBytes(MasterKeySize)
	f, err := os.OpenFile(MasterKeyPath(dataDir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(f, base64.StdEncoding.EncodeToString(key)+"\n"); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}

func decodeKey(s string) ([]byte, error) {
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == MasterKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("master key must be %d bytes in base64 or hex (generate one with `openssl rand -base64 32`)", MasterKeySize)
}
