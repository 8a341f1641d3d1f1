// Package mfa owns second factors as pure functions: TOTP enrollment (secret, otpauth URI, QR image),
// TOTP verification with replay refusal, and recovery codes. It does no HTTP and no storage: the caller
// seals secrets, hashes recovery codes and remembers the last accepted step.
package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"time"
	"unicode"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/signet-id/signet/internal/secrets"
)

// The TOTP parameters every mainstream authenticator app supports; anything else is shown in the URI
// but silently ignored by some apps, so Signet does not offer it.
const (
	Period     = 30 // seconds per step
	Digits     = 6
	SecretSize = 20 // bytes: the HMAC-SHA1 block-friendly size RFC 4226 recommends (160 bits)

	// skew is how many steps either side of now are accepted, for clock drift between phone and server.
	skew = 1
	// qrTargetPixels is the approximate side of the QR image; the module size is a whole number of
	// pixels (scanners dislike fractional scaling), so the actual side is close to this, not equal.
	qrTargetPixels = 256
	// qrQuietZone is the blank border in modules that the QR specification requires around a code.
	qrQuietZone = 4
)

var (
	// ErrMalformed means the input cannot be a TOTP code (not six ASCII digits once spaces are removed);
	// the caller should ask the user to retype rather than count it as a wrong guess if it wishes.
	ErrMalformed = errors.New("mfa: a code is 6 digits")
	// ErrWrongCode means a well-formed code that matches no accepted step.
	ErrWrongCode = errors.New("mfa: wrong code")
	// ErrReplay means the code matches a step already used (RFC 6238 §5.2: a code is good once).
	ErrReplay = errors.New("mfa: code already used")
	// ErrNoSecret means Verify was given an empty secret: a caller or storage bug, never the user's fault.
	ErrNoSecret = errors.New("mfa: no TOTP secret")
)

// b32 is how authenticator apps show and accept secrets: standard alphabet, no padding.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Enrollment is a new TOTP secret to show once.
type Enrollment struct {
	Secret []byte // raw secret (20 random bytes), to be sealed by the caller before storing
	Base32 string // the secret as an authenticator app shows/accepts it (no padding)
	URI    string // otpauth://totp/<Issuer>:<account>?algorithm=SHA1&digits=6&issuer=…&period=30&secret=…
	QRPNG  []byte // PNG of the URI as a QR code (server-side rendering), ~256 px, quiet zone included
}

// NewEnrollment makes a fresh secret for account at issuerName, with its otpauth URI and QR code.
// Neither name may contain a colon, because the URI's label uses one to separate them.
func NewEnrollment(issuerName, account string) (*Enrollment, error) {
	if strings.TrimSpace(issuerName) == "" || strings.TrimSpace(account) == "" {
		return nil, errors.New("mfa: enrollment needs an issuer name and an account")
	}
	if strings.Contains(issuerName, ":") || strings.Contains(account, ":") {
		return nil, errors.New("mfa: issuer name and account must not contain ':' (the otpauth label separator)")
	}
	return EnrollmentFor(secrets.RandomBytes(SecretSize), issuerName, account)
}

// EnrollmentFor shows an existing secret again (an enrolment not yet confirmed, its page
// reloaded): the same secret, URI and QR code as when it was made.
func EnrollmentFor(secret []byte, issuerName, account string) (*Enrollment, error) {
	if len(secret) == 0 || strings.Contains(issuerName, ":") || strings.Contains(account, ":") {
		return nil, errors.New("mfa: enrollment needs a secret, and names without ':'")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuerName,
		AccountName: account,
		Period:      Period,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: otpauth URI: %w", err)
	}
	uri := key.URL()
	qrPNG, err := qrPNG(uri)
	if err != nil {
		return nil, err
	}
	return &Enrollment{Secret: secret, Base32: key.Secret(), URI: uri, QRPNG: qrPNG}, nil
}

// QRDataURI returns the QR PNG as a data: URI, so a page can show it inline without another request
// (and without the secret ever appearing in a URL that could be logged).
func (e *Enrollment) QRDataURI() string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(e.QRPNG)
}

// qrPNG renders content as a black-on-white QR code with the quiet zone the specification requires
// (the library's own Key.Image scales edge to edge, which some phone scanners fail to read on a dark page).
func qrPNG(content string) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("mfa: QR code: %w", err)
	}
	modules := code.Bounds().Dx()
	total := modules + 2*qrQuietZone
	scale := max(1, (qrTargetPixels+total/2)/total)
	img := image.NewGray(image.Rect(0, 0, total*scale, total*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	origin := code.Bounds().Min
	for y := range modules {
		for x := range modules {
			if r, _, _, _ := code.At(origin.X+x, origin.Y+y).RGBA(); r != 0 {
				continue // white module
			}
			px := image.Rect((qrQuietZone+x)*scale, (qrQuietZone+y)*scale, (qrQuietZone+x+1)*scale, (qrQuietZone+y+1)*scale)
			for py := px.Min.Y; py < px.Max.Y; py++ {
				for pxx := px.Min.X; pxx < px.Max.X; pxx++ {
					img.SetGray(pxx, py, color.Gray{Y: 0})
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("mfa: QR PNG: %w", err)
	}
	return buf.Bytes(), nil
}

// Step is the RFC 6238 time step containing t (Unix time / 30).
func Step(t time.Time) int64 {
	return t.Unix() / Period
}

// Code returns the 6-digit code for secret at t (for tests, and for the load command that signs in).
func Code(secret []byte, t time.Time) string {
	return codeAt(secret, Step(t))
}

func codeAt(secret []byte, step int64) string {
	code, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), uint64(step), hotp.ValidateOpts{
		Digits:    otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		// Only an invalid base32 secret fails, and the secret was encoded just above.
		panic("mfa: " + err.Error())
	}
	return code
}

// Verify checks a 6-digit code against secret at now, accepting the current step and one step either side
// (clock drift), and returns the matched step (Unix time / 30), which the caller stores as the new lastStep.
// It refuses a step <= lastStep (replay: a code is good once, RFC 6238 §5.2) with ErrReplay, a wrong code
// with ErrWrongCode, and malformed input (after removing spaces; must be exactly 6 ASCII digits) with
// ErrMalformed. Every candidate step is computed and compared in constant time, so timing tells an
// attacker neither the code nor which step matched. A caller with no previous step passes lastStep 0.
func Verify(secret []byte, code string, now time.Time, lastStep int64) (step int64, err error) {
	code, ok := normalizeTOTP(code)
	if !ok {
		return 0, ErrMalformed
	}
	if len(secret) == 0 {
		return 0, ErrNoSecret
	}
	current := Step(now)
	var matched, replayed bool
	for s := current - skew; s <= current+skew; s++ {
		eq := subtle.ConstantTimeCompare([]byte(codeAt(secret, s)), []byte(code)) == 1
		switch {
		case eq && s > lastStep && !matched:
			// The earliest fresh match wins: a (one in a million) collision with a later step must
			// not burn the codes of steps in between.
			matched, step = true, s
		case eq && s <= lastStep:
			replayed = true
		}
	}
	switch {
	case matched:
		return step, nil
	case replayed:
		return 0, ErrReplay
	default:
		return 0, ErrWrongCode
	}
}

// LooksLikeTOTPCode reports whether s, once spaces are removed, is six ASCII digits.
func LooksLikeTOTPCode(s string) bool {
	_, ok := normalizeTOTP(s)
	return ok
}

// normalizeTOTP removes whitespace (apps show "123 456"; pasting adds tabs and newlines) and requires
// exactly six ASCII digits: unicode.IsDigit would let "١٢٣٤٥٦" through to a comparison that cannot match.
func normalizeTOTP(s string) (string, bool) {
	if len(s) > 64 { // bounded work for hostile input; no honest code is this long even with spaces
		return "", false
	}
	s = removeSpace(s)
	if len(s) != Digits {
		return "", false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

func removeSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}
