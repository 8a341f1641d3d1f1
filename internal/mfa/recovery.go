package mfa

import (
	"math"
	"strings"

	"github.com/signet-id/signet/internal/secrets"
)

const (
	// RecoveryAlphabet has no 0/o, 1/l or i, so a code read off paper cannot be mistyped between them;
	// lower case because that is what Normalize produces.
	RecoveryAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"
	// RecoveryCodeCount is how many codes a user gets at once.
	RecoveryCodeCount = 10
	// RecoveryCodeLength is the characters in a code, not counting the dash shown in the middle.
	RecoveryCodeLength = 10
)

// RecoveryCodeBits is the entropy of one recovery code: length × log2(alphabet size) (about 49.5 bits),
// enough that guessing one online is hopeless under the sign-in rate limits.
var RecoveryCodeBits = RecoveryCodeLength * math.Log2(float64(len(RecoveryAlphabet)))

// NewRecoveryCodes returns RecoveryCodeCount distinct codes shown as "xxxxx-xxxxx". The caller hashes
// NormalizeRecoveryCode of each (secrets.Keys.HashToken) and shows the codes once.
func NewRecoveryCodes() []string {
	codes := make([]string, 0, RecoveryCodeCount)
	seen := make(map[string]bool, RecoveryCodeCount)
	for len(codes) < RecoveryCodeCount {
		raw := randomRecovery()
		if seen[raw] { // astronomically unlikely, but two equal codes would be one code
			continue
		}
		seen[raw] = true
		codes = append(codes, raw[:RecoveryCodeLength/2]+"-"+raw[RecoveryCodeLength/2:])
	}
	return codes
}

// randomRecovery draws RecoveryCodeLength characters uniformly from RecoveryAlphabet, rejecting bytes
// at or above the largest multiple of the alphabet size so that no character is more likely than another.
func randomRecovery() string {
	n := len(RecoveryAlphabet)
	limit := 256 / n * n
	var b strings.Builder
	for b.Len() < RecoveryCodeLength {
		for _, c := range secrets.RandomBytes(RecoveryCodeLength) {
			if int(c) >= limit || b.Len() == RecoveryCodeLength {
				continue
			}
			b.WriteByte(RecoveryAlphabet[int(c)%n])
		}
	}
	return b.String()
}

// NormalizeRecoveryCode removes spaces and dashes and lower-cases (ASCII only, so no Unicode case folding
// such as the Kelvin sign turning into "k") so a user can type a code loosely. It returns false when the
// result cannot be a recovery code: wrong length or a character outside RecoveryAlphabet.
func NormalizeRecoveryCode(s string) (string, bool) {
	if len(s) > 64 { // bounded work for hostile input
		return "", false
	}
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if strings.IndexByte(RecoveryAlphabet, c) < 0 {
			return "", false
		}
		b.WriteByte(c)
	}
	if b.Len() != RecoveryCodeLength {
		return "", false
	}
	return b.String(), true
}

// LooksLikeRecoveryCode lets one input field accept either a TOTP code or a recovery code: it is true
// only for strings that normalize to a recovery code, which a 6-digit TOTP code never does.
func LooksLikeRecoveryCode(s string) bool {
	_, ok := NormalizeRecoveryCode(s)
	return ok
}
