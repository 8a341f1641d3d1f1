package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/signet-id/signet/internal/secrets"
)

// Key file types (ZITADEL's names).
const (
	TypeServiceAccount = "serviceaccount"
	TypeApplication    = "application"
)

// KeyFile is a ZITADEL-compatible JSON key file: a private key and who it belongs to.
type KeyFile struct {
	Type     string `json:"type"`
	KeyID    string `json:"keyId"`
	Key      string `json:"key"`
	UserID   string `json:"userId,omitempty"`
	AppID    string `json:"appId,omitempty"`
	ClientID string `json:"clientId,omitempty"`
}

// GenerateKeyPair returns a new private key and its public half as PEM. RSA keys use PKCS#1
// ("RSA PRIVATE KEY"), which is what ZITADEL writes; EC and Ed25519 keys PKCS#8, the only other
// format zitadel/oidc's loader reads.
func GenerateKeyPair(alg string) (privatePEM, publicPEM []byte, err error) {
	var priv crypto.Signer
	var block *pem.Block
	switch alg {
	case RS256:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		priv, block = k, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		priv, block = k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	case EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, err
		}
		priv, block = k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	default:
		return nil, nil, fmt.Errorf("unsupported key algorithm %q: use RS256, ES256 or EdDSA", alg)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// algorithmOf names the JWS algorithm Signet uses with a key.
func algorithmOf(k any) (string, error) {
	switch k := k.(type) {
	case *rsa.PublicKey, *rsa.PrivateKey:
		return RS256, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ES256, nil
		}
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return ES256, nil
		}
	case ed25519.PublicKey, ed25519.PrivateKey:
		return EdDSA, nil
	}
	return "", errors.New("unsupported key type: use RSA (2048 bits or more), EC P-256 or Ed25519")
}

// ParsePublicKeyPEM reads a PKIX or PKCS#1 public key.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("no PEM block found")
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	if k, ok := pub.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return nil, "", fmt.Errorf("RSA key of %d bits is too short: use 2048 bits or more", k.N.BitLen())
	}
	alg, err := algorithmOf(pub)
	return pub, alg, err
}

// ParsePrivateKeyPEM reads a PKCS#1, SEC 1 or PKCS#8 private key.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, string, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, "", errors.New("no PEM block found")
	}
	var k any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, "", err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, "", errors.New("unsupported private key type")
	}
	alg, err := algorithmOf(k)
	return signer, alg, err
}

// ParseKeyFile reads and checks a key file.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	var kf KeyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("key file is not JSON: %w", err)
	}
	switch kf.Type {
	case TypeServiceAccount:
		if kf.UserID == "" {
			return nil, errors.New(`service account key file has no "userId"`)
		}
	case TypeApplication:
		if kf.ClientID == "" {
			return nil, errors.New(`application key file has no "clientId"`)
		}
	default:
		return nil, fmt.Errorf(`key file "type" is %q; expected "serviceaccount" or "application"`, kf.Type)
	}
	if kf.KeyID == "" {
		return nil, errors.New(`key file has no "keyId"`)
	}
	if _, _, err := ParsePrivateKeyPEM([]byte(kf.Key)); err != nil {
		return nil, fmt.Errorf(`key file "key": %w`, err)
	}
	return &kf, nil
}

// Subject is the ID the key file's JWTs use as iss and sub.
func (k *KeyFile) Subject() string {
	if k.Type == TypeServiceAccount {
		return k.UserID
	}
	return k.ClientID
}

// Assertion returns a JWT for client authentication or the JWT bearer grant (RFC 7523).
func (k *KeyFile) Assertion(audience string, now time.Time, lifetime time.Duration) (string, error) {
	signer, alg, err := ParsePrivateKeyPEM([]byte(k.Key))
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: signer},
		(&jose.SignerOptions{}).WithHeader("kid", k.KeyID).WithType("JWT"))
	if err != nil {
		return "", err
	}
	claims := map[string]any{
		"iss": k.Subject(), "sub": k.Subject(), "aud": []string{audience},
		"iat": now.Unix(), "exp": now.Add(lifetime).Unix(), "jti": secrets.NewID(),
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
